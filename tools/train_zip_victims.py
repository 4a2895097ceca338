"""Train the backdoored victim classifiers of the ZIP chapter and ship them as artifacts.

    python tools/train_zip_victims.py                      # all victims
    python tools/train_zip_victims.py --victims cifar10_badnets

Each victim is the mirrored pretrained CIFAR-10 ResNet-20 fine-tuned (:func:`backdoorbook.train.fit`,
SGD, cosine schedule, crop+flip augmentation) on a poison-only poisoned training subset
(:func:`backdoorbook.poisoning.poison_dataset`): the attacker relabels ``rate`` of the samples to
``target`` after adding the trigger. For GTSRB the ResNet-20 gets a fresh 43-class head.
Fine-tuning a pretrained net, rather than training from scratch as ZIP's authors do (ResNet-34,
arXiv 2303.12175), is what fits a CPU. WaNet uses strength 1.0 (paper: 0.5) so that the warp is
implanted within these few epochs. Each artifact ``zip_victim_<dataset>_<attack>`` records the
poisoning, the training and its full-test-split CA and ASR in its provenance.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from backdoorbook import runtime
from backdoorbook.artifacts import save_artifact
from backdoorbook.data import load_classification, used_checksums
from backdoorbook.metrics import accuracy, attack_success_rate, predict
from backdoorbook.models import load_cifar_resnet
from backdoorbook.poisoning import make_trigger, poison_dataset
from backdoorbook.tensors import to_image_tensor
from backdoorbook.train import fit, random_crop_flip

#: victim -> (dataset, trigger, trigger overrides, poison rate, target, training images, epochs, lr)
VICTIMS = {
    "cifar10_badnets": ("cifar10", "badnets", {}, 0.05, 0, 10_000, 3, 0.01),
    "cifar10_blended": ("cifar10", "blended", {}, 0.05, 0, 10_000, 3, 0.01),
    "cifar10_wanet": ("cifar10", "wanet", {"strength": 1.0}, 0.10, 0, 10_000, 3, 0.01),
    "gtsrb_badnets": ("gtsrb", "badnets", {}, 0.05, 0, None, 5, 0.05),
}


def train_victim(key: str, seed: int = 0) -> None:
    dataset, attack, overrides, rate, target, n_train, epochs, lr = VICTIMS[key]
    runtime.seed_everything(seed)
    train, test = load_classification(dataset, "train"), load_classification(dataset, "test")
    order = torch.randperm(len(train.labels), generator=torch.Generator().manual_seed(seed))[:n_train]
    images, labels = to_image_tensor(train.images[order.numpy()]), torch.as_tensor(train.labels[order.numpy()]).long()
    trigger = make_trigger(attack, seed=seed, **overrides)
    poisoned = poison_dataset(images, labels, trigger, rate=rate, target=target, seed=seed)
    model = load_cifar_resnet(20)
    if len(train.classes) != 10:
        model.model.linear = torch.nn.Linear(model.model.linear.in_features, len(train.classes))
    start = time.time()
    history = fit(model, poisoned.images, poisoned.labels, epochs=epochs, batch_size=128, lr=lr,
                  augment=random_crop_flip(4), seed=seed, desc=key)
    wall = time.time() - start
    test_x, test_y = to_image_tensor(test.images), torch.as_tensor(test.labels).long()
    ca = accuracy(predict(model, test_x), test_y)
    asr = attack_success_rate(predict(model, trigger(test_x)), test_y, target)
    print(f"{key}: CA {ca}, ASR {asr}, {wall:.0f} s", flush=True)
    save_artifact(f"zip_victim_{key}", model.model.state_dict(), {
        "command": " ".join(["python tools/train_zip_victims.py", *sys.argv[1:]]),
        "data_checksums": used_checksums(), "wall_time_s": round(wall, 1),
        "device": runtime.describe_device(torch.device("cpu")), "dataset": dataset, "num_classes": len(train.classes),
        "architecture": "CIFAR ResNet-20 (backdoorbook.models.cifar_resnet), init: mirrored pretrained CIFAR-10 weights",
        "depth": 20, "attack": attack, "trigger_overrides": overrides, "trigger_seed": seed, "poison_rate": rate, "target": target,
        "train_images": len(labels), "poisoned_images": len(poisoned.indices), "epochs": epochs, "lr": lr,
        "batch_size": 128, "final_train_loss": round(history.loss[-1], 4),
        "test_clean_accuracy": ca.value, "test_asr": asr.value, "test_n": ca.n, "test_asr_n": asr.n})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Train the ZIP chapter's backdoored victims.")
    parser.add_argument("--victims", nargs="+", default=list(VICTIMS), choices=list(VICTIMS))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    runtime.set_threads(args.threads)
    for key in args.victims:
        train_victim(key, args.seed)


if __name__ == "__main__":
    main()
