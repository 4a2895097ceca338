"""The models the IBA chapter compares: a clean control and one backdoored model per method and rate.

Every model starts from the same clean CamVid weights and gets the same training (the
profile's ``poison_epochs`` of AdamW with a cosine schedule, batch ``poison_batch_size``,
random crops and flips) on its own training set: the clean set for the control, the set
poisoned by baseline, NNI or PRL placement (Lan et al., "Influencer Backdoor Attack on
Semantic Segmentation", ICLR 2024, arXiv:2303.12054) for the others. The backdoor needs far
more optimisation steps than a CPU chapter can afford, so the ``ci`` profile ships these
models as artifacts trained by ``tools/train_iba_models.py`` with exactly this code, and the
chapter verifies that each artifact's recipe matches its profile; the ``paper`` profile trains
them in the chapter.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..artifacts import ARTIFACTS_DIR, load_trained_artifact
from ..models.segmentation import small_deeplab
from ..train import fit, random_crop_flip
from .iba import METHODS, IBAConfig, eligible_for_poisoning, poison_dataset, select_poison_indices

#: Key of the clean control among the compared models.
CONTROL = ("clean", 0.0)


@dataclass(frozen=True)
class TrainingSet:
    """One compared model's training set: images ``[N, 3, H, W]``, labels ``[N, H, W]``, poisoned count."""

    images: torch.Tensor
    labels: torch.Tensor
    poisoned: int


def compared_keys(poison_rates) -> list[tuple[str, float]]:
    """``(method, rate)`` of every compared model: the clean control first, then each rate × method."""
    return [CONTROL] + [(method, rate) for rate in poison_rates for method in METHODS]


def recipe(cfg) -> dict:
    """The profile settings a compared model depends on (stored with, and checked against, artifacts)."""
    return {"downsample": cfg.downsample, "width": cfg.width, "clean_artifact": cfg.clean_artifact,
            "poison_epochs": cfg.poison_epochs, "poison_lr": cfg.poison_lr, "poison_batch_size": cfg.poison_batch_size,
            "trigger_size": cfg.trigger_size, "margin": cfg.margin, "nni_band": list(cfg.nni_band),
            "prl_pixels": cfg.prl_pixels, "min_victim_pixels": cfg.min_victim_pixels}


def artifact_name(cfg, key: tuple[str, float]) -> str:
    """Artifact name of a compared model, e.g. ``iba_camvid_nni_10pct_w16_ds2``."""
    method, rate = key
    tag = "control" if key == CONTROL else f"{method}_{round(100 * rate)}pct"
    return f"iba_camvid_{tag}_w{cfg.width}_ds{cfg.downsample}"


def training_sets(images: torch.Tensor, labels: torch.Tensor, trigger: torch.Tensor, cfg, *, victim: int, target: int,
                  seed: int = 0) -> dict[tuple[str, float], TrainingSet]:
    """The training set of every compared model, keyed as :func:`compared_keys`.

    At each rate the three methods poison the *same* images (drawn among those eligible for
    every placement rule), so they differ only in trigger placement and labelling.
    """
    eligible = eligible_for_poisoning(labels, IBAConfig("nni", victim, target, trigger_size=cfg.trigger_size,
                                                        margin=cfg.margin, nni_band=cfg.nni_band),
                                      cfg.min_victim_pixels)
    sets = {CONTROL: TrainingSet(images, labels, 0)}
    for rate in cfg.poison_rates:
        indices = select_poison_indices(eligible, rate, torch.Generator().manual_seed(seed))
        for method in METHODS:
            config = IBAConfig(method, victim, target, trigger_size=cfg.trigger_size, margin=cfg.margin,
                               nni_band=cfg.nni_band, prl_pixels=cfg.prl_pixels)
            x, y, _ = poison_dataset(images, labels, indices, trigger, config, torch.Generator().manual_seed(seed))
            sets[(method, rate)] = TrainingSet(x, y, len(indices))
    return sets


def train_from_clean(clean_state: dict, data: TrainingSet, cfg, num_classes: int, *, device: torch.device | str = "cpu",
                     seed: int = 0, progress: bool = True, desc: str = "train") -> tuple[nn.Module, float]:
    """Train one compared model from the clean weights; returns ``(model, final training loss)``."""
    model = small_deeplab(num_classes, cfg.width).to(device)
    model.load_state_dict(clean_state)
    history = fit(model, data.images, data.labels, epochs=cfg.poison_epochs, batch_size=cfg.poison_batch_size,
                  lr=cfg.poison_lr, optimizer="adamw", augment=random_crop_flip(4), seed=seed, progress=progress,
                  desc=desc)
    return model, history.loss[-1]


def load_compared_model(cfg, key: tuple[str, float], num_classes: int, *, seed: int = 0,
                        device: torch.device | str = "cpu", directory: Path = ARTIFACTS_DIR) -> nn.Module:
    """A shipped compared model (checksum verified); refuses one trained with another recipe or seed."""
    model = small_deeplab(num_classes, cfg.width).to(device)
    model.load_state_dict(load_trained_artifact(artifact_name(cfg, key), recipe(cfg), seed, directory))
    return model.eval()
