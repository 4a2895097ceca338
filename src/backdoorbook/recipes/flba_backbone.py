"""Pre-train the FLBA chapter's Conv-4 backbone on miniImageNet's 64 base classes and ship it.

    python -m backdoorbook.recipes.flba_backbone [--threads 2]

The mirror holds 100 images of each base class (the ``train`` split of the Ravi-Larochelle
class split). Of each class, the first ``holdout`` images are held out to score the
base-class accuracy; the rest train a Conv-4 plus a linear 64-way head (the "Baseline"
pre-training of Chen et al., ICLR 2019, arXiv:1904.04232) with
:func:`backdoorbook.training.supervised.fit` at 42 px (84 px pooled 2x2), with crop-and-flip
augmentation, resumable after every epoch. Only the backbone is kept, as the artifact the FLBA
profile names. The novel (``test``) classes are never seen here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from .. import data
from ..book.profiles import ch05_flba
from ..evaluation.classification import accuracy, predict
from ..models.conv4 import FLBA_IMAGE_SIZE, conv4_backbone, downsample_images
from ..tensors import to_image_tensor
from ..training.optim import steps_per_epoch
from ..training.supervised import fit, random_crop_flip
from .common import checkpoint_path, recipe_parser, ship, start


@dataclass(frozen=True)
class Recipe:
    """The backbone's pre-training settings."""

    epochs: int = 60
    batch_size: int = 64
    lr: float = 0.05
    weight_decay: float = 5e-4
    holdout: int = 10  # images per base class held out for the base-class accuracy
    seed: int = 0


def base_class_data(holdout: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(train_x, train_y, held_x, held_y)``: base-class images at 42 px, labels remapped to
    0..63."""
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


def train(
    recipe: Recipe, name: str, device: torch.device, progress: bool = True
) -> tuple[dict, dict]:
    """Pre-train (resuming from the checkpoint); return the backbone's state dict and provenance
    fields."""
    train_x, train_y, held_x, held_y = base_class_data(recipe.holdout)
    backbone = conv4_backbone()
    feature_dim = backbone(train_x[:1]).shape[1]
    model = nn.Sequential(backbone, nn.Linear(feature_dim, 64)).to(device)
    history = fit(
        model,
        train_x,
        train_y,
        epochs=recipe.epochs,
        batch_size=recipe.batch_size,
        lr=recipe.lr,
        weight_decay=recipe.weight_decay,
        augment=random_crop_flip(4),
        seed=recipe.seed,
        checkpoint=checkpoint_path(name),
        progress=progress,
        desc=name,
    )
    held = accuracy(predict(model, held_x, batch_size=500), held_y)
    return backbone.state_dict(), {
        "wall_time_s": sum(history.seconds),
        "images_seen": recipe.epochs * len(train_x),
        "quality": {"base_class_heldout_accuracy": round(held.value, 2), "heldout_images": held.n},
        "architecture": (
            "Conv-4 (width 64), ImageNet normalisation inside, linear 64-way head discarded"
        ),
        "image_size": FLBA_IMAGE_SIZE,
        "feature_dim": feature_dim,
        "train_images": len(train_x),
        "steps": recipe.epochs * steps_per_epoch(len(train_x), recipe.batch_size),
        "train_accuracy_per_epoch": [round(a, 2) for a in history.accuracy],
    }


def main(argv: list[str] | None = None) -> None:
    args = recipe_parser(__doc__.splitlines()[0]).parse_args(argv)
    recipe, name = Recipe(), ch05_flba.CI.backbone_artifact
    run = start(args, recipe.seed)
    state, info = train(recipe, name, run.device)
    ship(
        name,
        state,
        info,
        module=__name__,
        recipe=asdict(recipe),
        seed=recipe.seed,
        run=run,
        argv=argv,
    )


if __name__ == "__main__":
    main()
