"""Pre-train the clean miniature CLIP of chapter 4 on captioned CIFAR-10 + miniImageNet and ship it.

    python -m backdoorbook.recipes.mini_clip [--threads 2]

A fresh :func:`backdoorbook.models.mini_clip.mini_clip` is trained with the CLIP loss
(:func:`backdoorbook.training.contrastive.clip_objective`) on generated captions
(:func:`backdoorbook.data.captions.load_captioned`), scored zero-shot on the held-out test
pairs with the prompt ensemble, and written in float16 as the artifact the chapter's profile
names.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass

import torch

from .. import artifacts
from ..book.profiles import ch04_clip_defenses
from ..data.captions import CaptionedImages, load_captioned
from ..evaluation.zero_shot import zero_shot_accuracy, zero_shot_classifier
from ..models.mini_clip import MINI_CLIP_CONFIG, ClipModel, mini_clip
from ..training.contrastive import clip_objective, train_contrastive
from .common import recipe_parser, ship, start

CIFAR_CLASSES = 10
#: Minimum zero-shot top-1 (%): 10-way on CIFAR-10's test pairs, and over all 110 classes (the
#: testbed issue's bars).
QUALITY_BARS = {"zeroshot_top1_cifar10": 60.0, "zeroshot_top1_all": 30.0}


@dataclass(frozen=True)
class Recipe:
    """The clean pre-training's settings."""

    epochs: int = 50
    cifar_per_class: int = 2000
    mini_per_class: int = 80
    batch_size: int = 256
    lr: float = 2e-3
    seed: int = 0


def pretrain_clip(
    data: CaptionedImages,
    *,
    epochs: int,
    batch_size: int = 256,
    lr: float = 2e-3,
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> tuple[ClipModel, list[float]]:
    """A fresh :func:`mini_clip` trained with the CLIP loss on ``data``; returns the model and
    per-epoch losses."""
    model = mini_clip(seed=seed).to(device)
    losses = train_contrastive(
        model,
        len(data),
        clip_objective(model, data.images, data.captions),
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        progress=progress,
        desc="clean CLIP pre-training",
    )
    return model, losses


def load_or_pretrain_clean(
    cfg,
    pool: CaptionedImages,
    *,
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> artifacts.Trained:
    """The clean miniature of chapter 4's profile ``cfg``: its ``clean_artifact`` (float32, checked
    to have :data:`MINI_CLIP_CONFIG`), or, when that is ``None``, a pre-training run here on
    ``pool``."""

    def pretrain_here() -> tuple[dict, dict]:
        started = time.perf_counter()
        model, losses = pretrain_clip(
            pool,
            epochs=cfg.clean_epochs,
            batch_size=cfg.batch_size,
            seed=seed,
            device=device,
            progress=progress,
        )
        return model.state_dict(), {
            "wall_time_s": time.perf_counter() - started,
            "final_loss": losses[-1],
        }

    trained = artifacts.load_or_train(cfg.clean_artifact, pretrain_here, device=device)
    if trained.shipped and trained.info["config"] != MINI_CLIP_CONFIG:
        raise artifacts.ArtifactError(
            f"artifact {cfg.clean_artifact} was trained with another model configuration"
        )
    return artifacts.Trained(
        {k: v.float() for k, v in trained.state.items()}, trained.info, trained.shipped
    )


def main(argv: list[str] | None = None) -> None:
    args = recipe_parser(__doc__.splitlines()[0]).parse_args(argv)
    recipe, name = Recipe(), ch04_clip_defenses.CI.clean_artifact
    run = start(args, recipe.seed)
    started = time.perf_counter()
    train = load_captioned(
        "train",
        cifar_per_class=recipe.cifar_per_class,
        mini_per_class=recipe.mini_per_class,
        seed=recipe.seed,
    )
    test = load_captioned("test", cifar_per_class=100, mini_per_class=20, seed=recipe.seed)
    model, losses = pretrain_clip(
        train,
        epochs=recipe.epochs,
        batch_size=recipe.batch_size,
        lr=recipe.lr,
        seed=recipe.seed,
        device=run.device,
    )
    state = {
        k: v.detach().half() for k, v in model.state_dict().items()
    }  # fp16 keeps the artifact small
    model.load_state_dict({k: v.float() for k, v in state.items()})
    ca = zero_shot_accuracy(
        model, test.images, test.labels, zero_shot_classifier(model, train.classes)
    )
    cifar = test.labels < CIFAR_CLASSES  # load_captioned lists CIFAR-10's classes first
    ca_cifar = zero_shot_accuracy(
        model,
        test.images[cifar],
        test.labels[cifar],
        zero_shot_classifier(model, train.classes[:CIFAR_CLASSES]),
    )
    info = {
        "wall_time_s": time.perf_counter() - started,
        "images_seen": recipe.epochs * len(train),
        "quality": {
            "zeroshot_top1_cifar10": round(ca_cifar.value, 2),
            "zeroshot_cifar10_test_images": ca_cifar.n,
            "zeroshot_top1_all": round(ca.value, 2),
            "zeroshot_test_images": ca.n,
        },
        "quality_bar": QUALITY_BARS,
    }
    ship(
        name,
        state,
        info,
        module=__name__,
        recipe=asdict(recipe),
        seed=recipe.seed,
        run=run,
        argv=argv,
        config=copy.deepcopy(MINI_CLIP_CONFIG),
        train_pairs=len(train),
        final_loss=losses[-1],
        dtype="float16",
    )


if __name__ == "__main__":
    main()
