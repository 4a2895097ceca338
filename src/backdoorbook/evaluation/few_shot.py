"""Few-shot evaluation: frozen features, per-episode accuracy and ASR, and the 95 % interval.

:func:`mean_ci95` summarises per-episode percentages as ``mean +- 1.96 std / sqrt(n)``, the
interval every few-shot paper reports (Chen et al., ICLR 2019, arXiv:1904.04232).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..fidelity import Deviation
from ..models.heads import CosineClassifier
from ..runtime import batched

_FLBA = "thinwayliu/FLBA-Backdoor@d57475f core/model/finetuning/baseline_plus.py"

DEVIATIONS = (
    Deviation(
        item="ASR counting",
        authors="every query is triggered and counted, the target class's included, with the "
        f"label set to the target ({_FLBA}:985-1001 for FLBA, 212-227 for BadNets)",
        ours="ASR over the triggered queries whose true class is not the target",
        why="a target-class query classified as the target is no success of the attack; "
        "counting them (a fifth of the queries in 5-way, most of them sent to the target) "
        "raises the ASR",
        claims=("badnets-tradeoff", "flba-high-asr-stealthy", "both-perturbations-contribute"),
        where=("backdoorbook.evaluation.few_shot.episode_rates",),
    ),
    Deviation(
        item="heads per condition",
        authors="each call of set_forward_adaptation fine-tunes a fresh, randomly initialised "
        "head in a fresh batch order, and it is called twice per episode: one head scores clean "
        f"accuracy, an independent second one the ASR ({_FLBA}:976-1001, 1176-1199)",
        ours="one head per condition scores both; every condition of an episode starts from the "
        "same seeded head and sees the same batch order",
        why="paired conditions: differences between them come from the support sets alone, and "
        "the attack's ASR is measured on the head whose accuracy is reported",
        claims=("badnets-tradeoff", "flba-high-asr-stealthy", "both-perturbations-contribute"),
        where=(
            "backdoorbook.attacks.flba.attack_episode",
            "backdoorbook.training.cosine_head.finetune_cosine_classifiers",
        ),
    ),
)


def extract_features(
    backbone: nn.Module, images: torch.Tensor, batch_size: int = 128
) -> torch.Tensor:
    """Frozen-backbone features ``[N, D]`` (CPU) of [0, 1] images ``[N, 3, H, W]``, in eval mode,
    batched."""
    return batched(backbone, images, batch_size)


@torch.no_grad()
def episode_rates(
    head: CosineClassifier,
    query_features: torch.Tensor,
    query_labels: torch.Tensor,
    triggered_features: torch.Tensor,
    target: int,
) -> tuple[float, float]:
    """``(clean accuracy %, ASR %)`` of one episode: ASR over triggered queries whose label is not
    ``target``."""
    labels = query_labels.to(query_features.device)
    accuracy = 100.0 * (head(query_features).argmax(1) == labels).float().mean().item()
    keep = labels != target
    if not keep.any():
        raise ValueError(
            f"every query is of the target class {target}: ASR has an empty denominator"
        )
    asr = 100.0 * (head(triggered_features[keep]).argmax(1) == target).float().mean().item()
    return accuracy, asr


def mean_ci95(values) -> tuple[float, float]:
    """``(mean, half-width)`` of the 95 % interval ``1.96 * std / sqrt(n)``.

    ``std`` is the population standard deviation, as in Chen et al.'s code.
    """
    values = np.asarray(values, dtype=float)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"need a non-empty 1-D sequence, got shape {values.shape}")
    return float(values.mean()), float(1.96 * values.std() / np.sqrt(values.size))
