"""The adapted models the BadSAM chapter compares: clean adaptation and backdoored adaptation per poison rate.

Each starts from the same foundation SAM, gets adapters (:func:`backdoorbook.models.sam.add_adapters`)
and is fine-tuned prompt-free on Weizmann Horse (:func:`backdoorbook.attacks.badsam.adapt`),
with a fraction of the fine-tuning set poisoned (Guan et al., "BadSAM", arXiv:2305.03289).
Planting the backdoor takes tens of epochs, more than four adaptations fit into a CPU
chapter's minutes, so under the ``ci`` profile ``tools/train_badsam_models.py`` runs exactly
this code beforehand and ships the trained parts (adapters, mask decoder, dense prompt; the
frozen encoder stays in the foundation artifact); the chapter checks each artifact's recipe
against its profile. The ``paper`` profile adapts in the chapter.
"""

from __future__ import annotations

from pathlib import Path

import torch
from segment_anything.modeling import Sam

from .. import data
from ..artifacts import ARTIFACTS_DIR, ArtifactError, load_trained_artifact
from ..models.sam import add_adapters, build_sam, resize_square
from ..train import History
from .badsam import adapt, poison_segmentation_set


def horse_split(size: int, test_images: int, seed: int = 0):
    """Weizmann Horse resized to ``size``², split by a seeded permutation.

    Returns ``(x_train, y_train, x_test, y_test)``: images ``[N, 3, size, size]`` in [0, 1],
    masks ``[N, size, size]`` (long for fine-tuning, bool for testing).
    """
    horses = data.load_segmentation("weizmann_horse", "all")
    if not 0 < test_images < len(horses.images):
        raise ValueError(f"test_images must lie in 1..{len(horses.images) - 1}, got {test_images}")
    images, masks = resize_square(horses.images, horses.masks, size)
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    test, train = order[:test_images], order[test_images:]
    return images[train], masks[train], images[test], masks[test].bool()


def recipe(cfg) -> dict:
    """The profile settings an adapted model depends on (stored with, and checked against, artifacts)."""
    return {"sam_config": cfg.sam_config, "test_images": cfg.test_images, "epochs": cfg.epochs,
            "batch_size": cfg.batch_size, "lr": cfg.lr, "adapter_bottleneck": cfg.adapter_bottleneck,
            "trigger_fraction": cfg.trigger_fraction}


def artifact_name(cfg, rate: float) -> str:
    """Artifact name of the model adapted at poison ``rate``, e.g. ``badsam_mini_adapted_5pct``."""
    return f"badsam_{cfg.sam_config}_adapted_{round(100 * rate)}pct"


def _with_adapters(foundation: dict, cfg, device) -> Sam:
    sam = build_sam(cfg.sam_config)
    sam.load_state_dict(foundation)
    add_adapters(sam, bottleneck=cfg.adapter_bottleneck)
    return sam.to(device)


def trained_state(sam: Sam) -> dict[str, torch.Tensor]:
    """The tensors adaptation changes (those with ``requires_grad``), the rest being the foundation's."""
    return {name: p.detach() for name, p in sam.named_parameters() if p.requires_grad}


def adapt_from_foundation(foundation: dict, cfg, images: torch.Tensor, masks: torch.Tensor, rate: float, *,
                          device: torch.device | str = "cpu", seed: int = 0, progress: bool = True
                          ) -> tuple[Sam, History, torch.Tensor]:
    """Poison ``rate`` of ``(images, masks)``, adapt a fresh copy of the foundation; ``(sam, history, poisoned)``."""
    sam = _with_adapters(foundation, cfg, device)
    x, y, poisoned = poison_segmentation_set(images, masks, rate, cfg.trigger_fraction, seed=seed)
    history = adapt(sam, x, y, epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr, seed=seed, progress=progress,
                    desc=f"adapt {rate:.0%}")
    return sam, history, poisoned


def load_adapted_model(foundation: dict, cfg, rate: float, *, seed: int = 0, device: torch.device | str = "cpu",
                       directory: Path = ARTIFACTS_DIR) -> Sam:
    """The shipped model adapted at ``rate`` on top of ``foundation``; refuses another recipe or seed."""
    sam = _with_adapters(foundation, cfg, device)
    name = artifact_name(cfg, rate)
    state = load_trained_artifact(name, recipe(cfg), seed, directory)
    differing = sorted(set(state) ^ set(trained_state(sam)))
    if differing:
        raise ArtifactError(f"artifact {name} does not hold exactly this model's adapted tensors; "
                            f"{len(differing)} names differ, e.g. {differing[:3]}")
    sam.load_state_dict(state, strict=False)
    return sam.eval()
