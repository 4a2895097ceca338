"""Train the clean CamVid segmentation model that the IBA chapter starts from, and ship it.

    python -m backdoorbook.recipes.iba_clean [--threads 2]

Every model the chapter compares, a clean control and the backdoored ones, is trained from
these clean weights (by :mod:`backdoorbook.recipes.iba_models` for the ``ci`` profile, inside
the chapter for ``paper``); pre-training them once saves seven trainings. Writes the artifact
the IBA profile names as ``clean_artifact``, with its test mIoU.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from .. import artifacts
from ..book.profiles import ch03_iba
from ..data.tensor_views import load_segmentation_tensors
from ..evaluation.segmentation import mean_iou, predict_maps
from ..models.segmentation import small_deeplab
from ..training.supervised import fit, random_crop_flip
from .common import recipe_parser, ship, start

#: Minimum CamVid test mIoU (%) at the chapter's resolution (the testbed issue's bar).
QUALITY_BARS = {"test_miou": 45.0}


@dataclass(frozen=True)
class Recipe:
    """The clean pre-training's settings (those of the IBA ``ci`` profile)."""

    downsample: int = ch03_iba.CI.downsample
    width: int = ch03_iba.CI.width
    epochs: int = ch03_iba.CI.clean_epochs
    lr: float = ch03_iba.CI.clean_lr
    batch_size: int = ch03_iba.CI.batch_size
    seed: int = 0


def train(recipe: Recipe, device: torch.device, progress: bool = True) -> tuple[dict, dict]:
    """Pre-train and score the clean model; return its state dict and provenance fields."""
    train_set = load_segmentation_tensors("camvid", "train", recipe.downsample)
    test = load_segmentation_tensors("camvid", "test", recipe.downsample)
    model = small_deeplab(len(train_set.classes), recipe.width).to(device)
    history = fit(
        model,
        train_set.images,
        train_set.labels,
        epochs=recipe.epochs,
        batch_size=recipe.batch_size,
        lr=recipe.lr,
        optimiser="adamw",
        augment=random_crop_flip(4),
        seed=recipe.seed,
        progress=progress,
        desc="clean",
    )
    miou = mean_iou(
        predict_maps(model, test.images), test.labels, len(test.classes), test.ignore_index
    )
    return model.state_dict(), {
        "wall_time_s": sum(history.seconds),
        "images_seen": recipe.epochs * len(train_set),
        "quality": {"test_miou": round(miou.value, 2), "test_pixels": miou.n},
        "quality_bar": QUALITY_BARS,
        "epochs": recipe.epochs,
        "resolution": list(train_set.images.shape[2:]),
        "width": recipe.width,
        "final_train_loss": history.loss[-1],
        "final_train_pixel_accuracy": history.accuracy[-1],
        "test_miou": miou.value,
        "test_pixels": miou.n,
    }


def load_or_train_clean(
    cfg,
    resolution: list[int],
    *,
    device: torch.device | str = "cpu",
    seed: int = 0,
    progress: bool = True,
) -> artifacts.Trained:
    """The clean weights the IBA profile ``cfg`` starts from: its ``clean_artifact`` (checked to
    have the profile's width and ``resolution`` ``[H, W]``), or, when that is ``None``, a
    pre-training run here."""
    recipe = Recipe(
        downsample=cfg.downsample,
        width=cfg.width,
        epochs=cfg.clean_epochs,
        lr=cfg.clean_lr,
        batch_size=cfg.batch_size,
        seed=seed,
    )

    trained = artifacts.load_or_train(
        cfg.clean_artifact, lambda: train(recipe, device, progress), device=device
    )
    found = (trained.info["width"], trained.info["resolution"])
    if found != (cfg.width, list(resolution)):
        raise artifacts.ArtifactError(
            f"artifact {cfg.clean_artifact} was trained at width {found[0]} and resolution "
            f"{found[1]}; this profile needs {cfg.width} and {list(resolution)}"
        )
    return trained


def main(argv: list[str] | None = None) -> None:
    args = recipe_parser(__doc__.splitlines()[0]).parse_args(argv)
    recipe = Recipe()
    run = start(args, recipe.seed)
    state, info = train(recipe, run.device)
    ship(
        ch03_iba.CI.clean_artifact,
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
