"""Few-shot evaluation: frozen features, per-episode accuracy and ASR, and the 95 % interval.

:func:`mean_ci95` summarises per-episode percentages as ``mean +- 1.96 std / sqrt(n)``, the
interval every few-shot paper reports (Chen et al., ICLR 2019, arXiv:1904.04232).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..models.heads import CosineClassifier
from ..runtime import batched


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
