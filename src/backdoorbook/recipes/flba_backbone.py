"""Pre-train the FLBA chapter's Conv-4 backbone on miniImageNet's 64 base classes and ship it.

Run once, on a CPU or a GPU::

    BACKDOORBOOK_DATA=../shared/data python -m backdoorbook.models.train_flba_backbone [--epochs 60] [--threads 1]

The mirror holds 100 images of each base class (the ``train`` split of the Ravi-Larochelle
class split). Of each class, the first ``--holdout`` images (default 10) are held out to
score the final base-class accuracy; the rest train a Conv-4 plus a linear 64-way head
(the "Baseline" pre-training of Chen et al., ICLR 2019, arXiv:1904.04232) with
:func:`backdoorbook.train.fit`, at 42 px (84 px pooled 2x2) with crop-and-flip augmentation.
Only the backbone is kept: ``artifacts/flba_conv4_miniimagenet42.safetensors`` with a
provenance record (command, data checksums, epochs, steps, wall time, device, accuracies).
The novel (``test``) classes are never seen here.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
from torch import nn

from .. import artifacts, data, runtime
from ..metrics import accuracy, predict
from ..tensors import to_image_tensor
from ..train import fit, random_crop_flip
from .conv4 import FLBA_BACKBONE_ARTIFACT, FLBA_IMAGE_SIZE, conv4_backbone, downsample_images


def base_class_data(holdout: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(train_x, train_y, held_x, held_y)``: base-class images at 42 px, labels remapped to 0..63."""
    base = data.load_classification("miniimagenet", "train")
    images = downsample_images(to_image_tensor(base.images))
    classes = sorted(set(base.labels.tolist()))
    labels = torch.as_tensor([classes.index(int(label)) for label in base.labels])
    rank = torch.zeros_like(labels)
    for c in range(len(classes)):
        members = (labels == c).nonzero().flatten()
        rank[members] = torch.arange(len(members))
    held = rank < holdout
    return images[~held], labels[~held], images[held], labels[held]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--holdout", type=int, default=10, help="images per class held out for the base accuracy")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 leaves the machine usable)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    runtime.set_threads(args.threads)
    runtime.seed_everything(args.seed)
    device = runtime.choose_device(args.device)
    train_x, train_y, held_x, held_y = base_class_data(args.holdout)
    backbone = conv4_backbone()
    feature_dim = backbone(train_x[:1]).shape[1]
    model = nn.Sequential(backbone, nn.Linear(feature_dim, 64)).to(device)
    start = time.perf_counter()
    history = fit(model, train_x, train_y, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                  weight_decay=5e-4, augment=random_crop_flip(4), seed=args.seed, desc="conv4")
    wall = time.perf_counter() - start
    held_acc = accuracy(predict(model, held_x, batch_size=500, progress=False), held_y)
    command = "python -m backdoorbook.models.train_flba_backbone " + " ".join(argv if argv is not None else sys.argv[1:])
    provenance = {"command": command.strip(), "data_checksums": data.used_checksums(),
                  "wall_time_s": round(wall, 1), "device": runtime.describe_device(device),
                  "architecture": "Conv-4 (width 64), ImageNet normalisation inside, linear 64-way head discarded",
                  "image_size": FLBA_IMAGE_SIZE, "feature_dim": feature_dim, "epochs": args.epochs,
                  "batch_size": args.batch_size, "lr": args.lr, "optimizer": "sgd nesterov, cosine schedule, wd 5e-4",
                  "augmentation": "random crop (reflect pad 4) + horizontal flip", "seed": args.seed,
                  "steps": args.epochs * -(-len(train_x) // args.batch_size), "train_images": len(train_x),
                  "final_train_accuracy": round(history.accuracy[-1], 2),
                  "train_accuracy_per_epoch": [round(a, 2) for a in history.accuracy],
                  "base_class_heldout_accuracy": round(held_acc.value, 2), "heldout_images": held_acc.n}
    path = artifacts.save_artifact(FLBA_BACKBONE_ARTIFACT, backbone.state_dict(), provenance)
    print(f"base-class held-out accuracy {held_acc} after {args.epochs} epochs, {wall:.0f} s -> {path}", flush=True)


if __name__ == "__main__":
    main()
