"""Train chapter 6's CIFAR-10 targets (VGG-style, MobileNetV2-style, ViT) and a ResNet-20 control.

    python -m backdoorbook.recipes.cifar_targets [--models vgg mobilenetv2 vit resnet20]
        [--threads 2]

Each model is trained with :func:`backdoorbook.training.supervised.fit` (crop-and-flip
augmentation, linear warm-up then cosine decay, resumable after every epoch from
``artifacts/checkpoints/<name>.safetensors``) on the mirror's 50,000 training images, scored on
all 10,000 test images (``quality["test_accuracy"]``, against :data:`QUALITY_BARS`), and
written to ``artifacts/<name>`` with its provenance. The architectures are those of
:mod:`backdoorbook.models.cifar_small`, widened from their defaults so that a short CPU
recipe reaches the bars; the ResNet-20 control (He et al., 2016) gets the VGG's recipe, so
that the chapter can tell an architecture effect from a training-quality effect.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from .. import data, runtime
from ..book.profiles import ch06_transferability
from ..evaluation.classification import accuracy, predict
from ..models.cifar_small import cifar_target
from ..tensors import to_image_tensor
from ..training.optim import steps_per_epoch
from ..training.supervised import fit, random_crop_flip
from .common import checkpoint_path, recipe_parser, ship, start


@dataclass(frozen=True)
class Recipe:
    """One target's architecture and training settings."""

    architecture: str  # a key of backdoorbook.models.cifar_small.SMALL_ARCHITECTURES, or "resnet20"
    config: dict = field(default_factory=dict)  # the architecture's keyword arguments
    epochs: int = 15
    batch_size: int = 256
    optimiser: str = "sgd"
    lr: float = 0.1
    weight_decay: float = 5e-4
    warmup_epochs: int = 1
    seed: int = 0


#: The half-width CIFAR MobileNetV2 (stride 1 in the first stages, as for 32 px inputs).
MOBILENETV2_HALF = (
    (1, 8, 1, 1),
    (6, 12, 2, 1),
    (6, 16, 3, 2),
    (6, 32, 4, 2),
    (6, 48, 3, 1),
    (6, 80, 3, 2),
    (6, 160, 1, 1),
)

RECIPES = {
    "vgg": Recipe("vgg", {"widths": (64, 128, 256)}),
    "mobilenetv2": Recipe(
        "mobilenetv2", {"config": MOBILENETV2_HALF, "stem": 16, "head": 640}, epochs=24
    ),
    "vit": Recipe(
        "vit",
        {"patch": 4, "dim": 96, "depth": 6, "heads": 3, "mlp_ratio": 2},
        epochs=40,
        optimiser="adamw",
        lr=1e-3,
        weight_decay=0.05,
        warmup_epochs=2,
    ),
    "resnet20": Recipe("resnet20"),
}
#: Minimum test accuracy (%) of each target (the testbed issue's bars; the control has none).
QUALITY_BARS = {"vgg": 88.0, "mobilenetv2": 85.0, "vit": 75.0}


#: Recipe key -> the target's display name in chapter 6's profile.
LABELS = {"vgg": "VGG", "mobilenetv2": "MobileNetV2", "vit": "ViT"}


def artifact_name(key: str) -> str:
    """The artifact a recipe key makes, as chapter 6's profile names it."""
    profile = ch06_transferability.CI
    return (
        profile.control_artifact
        if key == "resnet20"
        else dict(profile.target_artifacts)[LABELS[key]]
    )


def build(recipe: Recipe) -> torch.nn.Module:
    """The untrained network of ``recipe`` (taking [0, 1] images)."""
    return cifar_target(recipe.architecture, **recipe.config)


def cifar10_tensors() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(train_x, train_y, test_x, test_y)``: the mirror's CIFAR-10 as [0, 1] images and labels."""
    train_set = data.load_classification("cifar10", "train")
    test_set = data.load_classification("cifar10", "test")
    return (
        to_image_tensor(train_set.images),
        torch.as_tensor(train_set.labels).long(),
        to_image_tensor(test_set.images),
        torch.as_tensor(test_set.labels).long(),
    )


def train(
    recipe: Recipe,
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    *,
    device: torch.device,
    checkpoint: Path | None = None,
    progress: bool = True,
    desc: str = "train",
) -> tuple[dict, dict]:
    """Train ``recipe`` (resuming from ``checkpoint``) and score it on the test images.

    Returns the state dict and the provenance fields (``quality["test_accuracy"]`` among them).
    """
    torch.manual_seed(recipe.seed)
    model = build(recipe).to(device).to(memory_format=torch.channels_last)
    steps = steps_per_epoch(len(train_x), recipe.batch_size)
    history = fit(
        model,
        train_x,
        train_y,
        epochs=recipe.epochs,
        batch_size=recipe.batch_size,
        lr=recipe.lr,
        weight_decay=recipe.weight_decay,
        optimiser=recipe.optimiser,
        augment=random_crop_flip(4),
        seed=recipe.seed,
        warmup_steps=recipe.warmup_epochs * steps,
        checkpoint=checkpoint,
        progress=progress,
        desc=desc,
    )
    test = accuracy(predict(model, test_x, batch_size=500), test_y)
    return model.state_dict(), {
        "wall_time_s": sum(history.seconds),
        "images_seen": recipe.epochs * len(train_x),
        "quality": {"test_accuracy": round(test.value, 2), "test_images": test.n},
        "architecture": recipe.architecture,
        "architecture_config": recipe.config,
        "parameters": sum(p.numel() for p in model.parameters()),
        "train_images": len(train_x),
        "steps": recipe.epochs * steps,
        "train_accuracy_per_epoch": [round(a, 2) for a in history.accuracy],
        "loss_per_epoch": [round(v, 4) for v in history.loss],
    }


def main(argv: list[str] | None = None) -> None:
    parser = recipe_parser(__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    args = parser.parse_args(argv)
    run = start(args, RECIPES[args.models[0]].seed)
    tensors = cifar10_tensors()
    for key in args.models:
        recipe, name = RECIPES[key], artifact_name(key)
        runtime.seed_everything(recipe.seed)
        state, info = train(
            recipe, *tensors, device=run.device, checkpoint=checkpoint_path(name), desc=name
        )
        ship(
            name,
            state,
            info,
            module=__name__,
            recipe=asdict(recipe),
            seed=recipe.seed,
            run=run,
            argv=argv,
            quality_bar=QUALITY_BARS.get(key),
        )


if __name__ == "__main__":
    main()
