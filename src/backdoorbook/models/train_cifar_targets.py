"""Train the project's own CIFAR-10 targets (VGG-style, MobileNetV2-style, small ViT) and ship them.

Run once, on a CPU or a GPU::

    BACKDOORBOOK_DATA=../shared/data python -m backdoorbook.models.train_cifar_targets [--models vgg vit] [--threads 1]

Each model is trained with :func:`backdoorbook.train.fit` and the standard crop-and-flip
augmentation on the mirror's 50,000 training images, scored on its 10,000 test images, and
written to ``artifacts/cifar10_<name>.safetensors`` with a provenance record (command, data
checksums, epochs, steps, wall time, device, train and test accuracy). Chapters load them with
:func:`backdoorbook.models.cifar_small.load_cifar_small`, which verifies the sha256.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from .. import artifacts, data, runtime
from ..metrics import accuracy, predict
from ..tensors import to_image_tensor
from ..train import fit, random_crop_flip
from .cifar_small import SMALL_ARCHITECTURES, cifar_small

#: Per-architecture recipe: epochs and the arguments of :func:`fit` (sized for one CPU thread).
RECIPES = {
    "vgg": dict(epochs=2, optimizer="sgd", lr=0.05, weight_decay=5e-4),
    "mobilenetv2": dict(epochs=2, optimizer="sgd", lr=0.05, weight_decay=4e-5),
    "vit": dict(epochs=2, optimizer="adamw", lr=1e-3, weight_decay=0.05),
}


def train_one(name: str, train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor,
              *, epochs: int, device: torch.device, seed: int, batch_size: int = 128) -> tuple[dict, dict]:
    """Train architecture ``name``; return its state dict and the provenance fields it produced."""
    runtime.seed_everything(seed)
    recipe = {**RECIPES[name], "epochs": epochs}
    model = cifar_small(name).to(device)
    start = time.perf_counter()
    history = fit(model, train_x, train_y, batch_size=batch_size, augment=random_crop_flip(4), seed=seed,
                  desc=name, **recipe)
    wall = time.perf_counter() - start
    test_acc = accuracy(predict(model, test_x, batch_size=500, progress=False), test_y)
    info = {"architecture": name, "recipe": recipe, "batch_size": batch_size, "seed": seed,
            "steps": epochs * -(-len(train_x) // batch_size), "train_images": len(train_x),
            "final_train_accuracy": round(history.accuracy[-1], 2), "train_accuracy_per_epoch":
            [round(a, 2) for a in history.accuracy], "test_accuracy": round(test_acc.value, 2),
            "test_images": test_acc.n, "train_wall_time_s": round(wall, 1),
            "parameters": sum(p.numel() for p in model.parameters())}
    return model.state_dict(), info


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=list(SMALL_ARCHITECTURES), choices=list(SMALL_ARCHITECTURES))
    parser.add_argument("--epochs", type=int, default=None, help="override every recipe's epoch count")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 leaves the machine usable)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-images", type=int, default=None,
                        help="train on a seeded random subset of this many training images (default: all 50,000)")
    args = parser.parse_args(argv)
    runtime.set_threads(args.threads)
    device = runtime.choose_device(args.device)
    train, test = data.load_classification("cifar10", "train"), data.load_classification("cifar10", "test")
    train_x, test_x = to_image_tensor(train.images), to_image_tensor(test.images)
    train_y, test_y = torch.as_tensor(train.labels).long(), torch.as_tensor(test.labels).long()
    if args.train_images is not None:
        subset = torch.randperm(len(train_x), generator=torch.Generator().manual_seed(args.seed))[:args.train_images]
        train_x, train_y = train_x[subset], train_y[subset]
    command = "python -m backdoorbook.models.train_cifar_targets " + " ".join(argv if argv is not None else sys.argv[1:])
    for name in args.models:
        epochs = args.epochs or RECIPES[name]["epochs"]
        start = time.perf_counter()
        state, info = train_one(name, train_x, train_y, test_x, test_y, epochs=epochs, device=device, seed=args.seed)
        provenance = {"command": command.strip(), "data_checksums": data.used_checksums(),
                      "wall_time_s": round(time.perf_counter() - start, 1),
                      "device": runtime.describe_device(device), **info}
        path = artifacts.save_artifact(f"cifar10_{name}", state, provenance)
        print(f"{name}: test accuracy {info['test_accuracy']} % (n = {info['test_images']}), "
              f"{info['train_wall_time_s']} s -> {path}", flush=True)


if __name__ == "__main__":
    main()
