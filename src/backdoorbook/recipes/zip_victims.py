"""Train the backdoored victim classifiers of the ZIP chapter, ship them, and load them back.

    python -m backdoorbook.recipes.zip_victims [--victims cifar10_badnets ...] [--threads 2]

Each victim is the mirrored pretrained CIFAR-10 ResNet-20 fine-tuned
(:func:`backdoorbook.training.supervised.fit`, SGD, cosine schedule, crop+flip augmentation)
on a poison-only poisoned training subset
(:func:`backdoorbook.attacks.poisoning.poison_classification_set`): the attacker relabels
``rate`` of the samples to ``target`` after adding the trigger. For GTSRB the ResNet-20 gets a
fresh 43-class head. A victim artifact's provenance says which trigger it was poisoned with
(name, overrides, seed, target), so :func:`load_victim` rebuilds both the model and the
attacker's exact trigger.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..artifacts import ARTIFACTS_DIR, artifact_provenance, load_artifact
from ..attacks.poisoning import Trigger, build_trigger, poison_classification_set
from ..data import load_classification
from ..evaluation.classification import accuracy, attack_success_rate, predict
from ..models import load_cifar_resnet
from ..models.cifar_resnet import cifar_resnet
from ..tensors import to_image_tensor
from ..training.supervised import fit, random_crop_flip
from .common import recipe_parser, ship, start


@dataclass(frozen=True)
class Recipe:
    """One victim: its data, its poisoning and its fine-tuning."""

    dataset: str
    attack: str
    trigger_overrides: dict = field(default_factory=dict)
    poison_rate: float = 0.05
    target: int = 0
    train_images: int | None = 10_000  # a seeded subset of the training split (None: all of it)
    epochs: int = 3
    lr: float = 0.01
    batch_size: int = 128
    seed: int = 0


RECIPES = {
    "zip_victim_cifar10_badnets": Recipe("cifar10", "badnets"),
    "zip_victim_cifar10_blended": Recipe("cifar10", "blended"),
    "zip_victim_cifar10_wanet": Recipe("cifar10", "wanet", {"strength": 1.0}, poison_rate=0.10),
    "zip_victim_gtsrb_badnets": Recipe("gtsrb", "badnets", train_images=None, epochs=5, lr=0.05),
}


def train(recipe: Recipe, device: torch.device, progress: bool = True) -> tuple[dict, dict]:
    """Poison, fine-tune and score one victim; return its state dict and provenance fields."""
    train_set, test = (
        load_classification(recipe.dataset, "train"),
        load_classification(recipe.dataset, "test"),
    )
    order = torch.randperm(
        len(train_set.labels), generator=torch.Generator().manual_seed(recipe.seed)
    )
    order = order[: recipe.train_images].numpy()
    images, labels = (
        to_image_tensor(train_set.images[order]),
        torch.as_tensor(train_set.labels[order]).long(),
    )
    trigger = build_trigger(recipe.attack, seed=recipe.seed, **recipe.trigger_overrides)
    poisoned = poison_classification_set(
        images, labels, trigger, rate=recipe.poison_rate, target=recipe.target, seed=recipe.seed
    )
    model = load_cifar_resnet(20)
    if len(train_set.classes) != 10:
        model.model.linear = nn.Linear(model.model.linear.in_features, len(train_set.classes))
    model = model.to(device)
    started = time.perf_counter()
    history = fit(
        model,
        poisoned.images,
        poisoned.labels,
        epochs=recipe.epochs,
        batch_size=recipe.batch_size,
        lr=recipe.lr,
        augment=random_crop_flip(4),
        seed=recipe.seed,
        progress=progress,
    )
    wall = time.perf_counter() - started
    test_x, test_y = to_image_tensor(test.images), torch.as_tensor(test.labels).long()
    ca = accuracy(predict(model, test_x), test_y)
    asr = attack_success_rate(predict(model, trigger(test_x)), test_y, recipe.target)
    return model.model.state_dict(), {
        "wall_time_s": wall,
        "images_seen": recipe.epochs * len(labels),
        "quality": {
            "test_accuracy": round(ca.value, 2),
            "test_asr": round(asr.value, 2),
            "test_n": ca.n,
            "test_asr_n": asr.n,
        },
        "dataset": recipe.dataset,
        "num_classes": len(train_set.classes),
        "depth": 20,
        "architecture": (
            "CIFAR ResNet-20 (backdoorbook.models.cifar_resnet), init: "
            "mirrored pretrained CIFAR-10 weights"
        ),
        "attack": recipe.attack,
        "trigger_overrides": recipe.trigger_overrides,
        "trigger_seed": recipe.seed,
        "poison_rate": recipe.poison_rate,
        "target": recipe.target,
        "train_images": len(labels),
        "poisoned_images": len(poisoned.indices),
        "epochs": recipe.epochs,
        "final_train_loss": round(history.loss[-1], 4),
        "test_clean_accuracy": ca.value,
        "test_asr": asr.value,
        "test_n": ca.n,
        "test_asr_n": asr.n,
    }


def load_victim(name: str, directory: Path = ARTIFACTS_DIR) -> tuple[nn.Module, Trigger, dict]:
    """``(model, trigger, provenance)`` for victim artifact ``name``; the model takes [0, 1] inputs,
    eval mode."""
    record = artifact_provenance(name, directory)
    for key in ("attack", "target", "num_classes", "trigger_seed", "trigger_overrides", "depth"):
        if key not in record:
            raise ValueError(f"artifact {name!r} is not a victim: its provenance lacks {key!r}")
    model = cifar_resnet(record["depth"], record["num_classes"])
    model.model.load_state_dict(load_artifact(name, directory))
    trigger = build_trigger(
        record["attack"], seed=record["trigger_seed"], **record["trigger_overrides"]
    )
    return model.eval(), trigger, record


def main(argv: list[str] | None = None) -> None:
    parser = recipe_parser(__doc__.splitlines()[0])
    parser.add_argument("--victims", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    args = parser.parse_args(argv)
    for name in args.victims:
        recipe = RECIPES[name]
        run = start(args, recipe.seed)
        state, info = train(recipe, run.device)
        ship(
            name,
            state,
            info,
            module=__name__,
            recipe=asdict(recipe),
            seed=recipe.seed,
            device=run.device,
            argv=argv,
        )


if __name__ == "__main__":
    main()
