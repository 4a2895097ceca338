"""Pre-train the FLBA chapter's Conv-4 backbone on miniImageNet's 64 base classes and ship it.

    python -m backdoorbook.recipes.flba_backbone [--threads 2]

The mirror holds 100 images of each base class (the ``train`` split of the Ravi-Larochelle
class split). Of each class, the first ``holdout`` images are held out to score the
base-class accuracy; the rest train a Conv-4 plus a linear 64-way head (the "Baseline"
pre-training of Chen et al., ICLR 2019, arXiv:1904.04232) with
:func:`backdoorbook.training.supervised.fit` at 42 px (84 px pooled 2x2), with crop-and-flip
augmentation, resumable after every epoch. Only the backbone is kept, as the artifact the FLBA
profile names. The novel (``test``) classes are never seen in training; the testbed's bars are
measured on them: the clean 5-way 1-shot and 5-shot accuracy of Baseline++ heads fine-tuned as
the chapter fine-tunes them, over :data:`FEW_SHOT_EPISODES` episodes per setting.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from .. import data
from ..book.profiles import ch05_flba
from ..data.episodes import EpisodeSampler
from ..evaluation.classification import accuracy, predict
from ..evaluation.few_shot import extract_features, mean_ci95, query_accuracy
from ..models.conv4 import FLBA_IMAGE_SIZE, conv4_backbone, downsample_images
from ..tensors import to_image_tensor
from ..training.cosine_head import finetune_cosine_classifiers
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


#: Test-class episodes per shot setting for the bars (issue 14: 600, the usual protocol's count).
FEW_SHOT_EPISODES = 600
#: Minimum clean 5-way accuracy (%) at 1 and 5 shots (the testbed issue's bars).
QUALITY_BARS = {"fewshot_5way_1shot": 45.0, "fewshot_5way_5shot": 60.0}


def few_shot_accuracy(
    backbone: nn.Module,
    shots: int,
    *,
    episodes: int = FEW_SHOT_EPISODES,
    chunk: int = 100,
    seed: int = 0,
) -> tuple[float, float]:
    """``(mean, 95 % half-width)`` of the clean query accuracy (%) over ``episodes`` 5-way
    ``shots``-shot episodes of miniImageNet's test classes at the chapter's size: one Baseline++
    head per episode on the frozen support features, with the FLBA profile's fine-tuning settings
    (:class:`~backdoorbook.attacks.flba.FLBASettings`), ``chunk`` episodes fine-tuned at a time."""
    profile, tune = ch05_flba.CI, ch05_flba.CI.attack
    novel = data.load_classification("miniimagenet", "test")
    features = extract_features(backbone, downsample_images(to_image_tensor(novel.images)))
    sampler = EpisodeSampler(novel.labels, profile.n_way, shots, profile.n_query, seed=seed)
    accuracies = []
    for first in range(0, episodes, chunk):
        batch = [sampler.episode(i) for i in range(first, min(first + chunk, episodes))]
        heads = finetune_cosine_classifiers(
            torch.stack([features[e.support_index] for e in batch]),
            torch.stack([e.support_labels for e in batch]),
            profile.n_way,
            epochs=tune.finetune_epochs,
            batch_size=tune.finetune_batch_size,
            lr=tune.finetune_lr,
            seed=seed + first,
        )
        accuracies += [
            query_accuracy(head, features[e.query_index], e.query_labels)
            for head, e in zip(heads, batch)
        ]
    return mean_ci95(accuracies)


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
    quality = {"base_class_heldout_accuracy": round(held.value, 2), "heldout_images": held.n}
    for shots in (1, 5):
        mean, half_width = few_shot_accuracy(backbone, shots, seed=recipe.seed)
        quality |= {
            f"fewshot_5way_{shots}shot": round(mean, 2),
            f"fewshot_5way_{shots}shot_ci95": round(half_width, 2),
        }
    quality["fewshot_episodes"] = FEW_SHOT_EPISODES
    return backbone.state_dict(), {
        "wall_time_s": sum(history.seconds),
        "images_seen": recipe.epochs * len(train_x),
        "quality": quality,
        "quality_bar": QUALITY_BARS,
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
