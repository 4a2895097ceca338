"""Classification metrics: CA, ASR and PA, each a :class:`Rate` with its denominator.

Definitions (stated once in the book's introduction; ZIP, arXiv 2303.12175, for PA):
- CA: accuracy on clean (or defended clean) test inputs.
- ASR: fraction of triggered inputs predicted as the attacker's target, over inputs whose
  true label is not the target.
- PA: accuracy of defended triggered inputs with respect to their true labels.

:func:`backdoor_metrics` gives the three rates; :func:`backdoor_outcomes` the per-image outcomes
behind them, for paired comparisons over the same images.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..runtime import batched


@dataclass(frozen=True)
class Rate:
    """A rate with its denominator: ``value`` in percent over ``n`` samples."""

    value: float
    n: int

    def __str__(self) -> str:
        return f"{self.value:.2f} % (n = {self.n})"


def predict(model: nn.Module, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Class predictions of ``model`` for ``images`` ``[N, C, H, W]`` in [0, 1], batched.

    Runs on the model's device, in eval mode (the model's mode is restored afterwards).
    Returns a CPU ``LongTensor`` ``[N]``.
    """
    if images.ndim != 4:
        raise ValueError(f"expected [N, C, H, W] images, got shape {tuple(images.shape)}")
    if len(images) == 0:
        return torch.empty(0, dtype=torch.long)
    return batched(model, images, batch_size, apply=lambda m, x: m(x).argmax(1))


def accuracy(predictions: torch.Tensor, labels: torch.Tensor) -> Rate:
    """CA: percentage of ``predictions`` equal to ``labels``."""
    if predictions.shape != labels.shape:
        raise ValueError(
            f"predictions {tuple(predictions.shape)} and labels "
            f"{tuple(labels.shape)} differ in shape"
        )
    n = labels.numel()
    if n == 0:
        raise ValueError("accuracy over zero samples is undefined")
    return Rate(100.0 * (predictions == labels).sum().item() / n, n)


def attack_success_rate(predictions: torch.Tensor, labels: torch.Tensor, target: int) -> Rate:
    """ASR: percentage of triggered inputs predicted as ``target``, over inputs whose true label is
    not ``target``."""
    if predictions.shape != labels.shape:
        raise ValueError(
            f"predictions {tuple(predictions.shape)} and labels "
            f"{tuple(labels.shape)} differ in shape"
        )
    keep = labels != target
    n = int(keep.sum())
    if n == 0:
        raise ValueError(f"every label is the target {target}: ASR has an empty denominator")
    return Rate(100.0 * (predictions[keep] == target).sum().item() / n, n)


def backdoor_metrics(
    model: nn.Module,
    clean: torch.Tensor,
    poisoned: torch.Tensor,
    labels: torch.Tensor,
    target: int,
    batch_size: int = 256,
) -> dict[str, Rate]:
    """``{"CA", "PA", "ASR"}`` of ``model`` on already-defended ``clean`` and ``poisoned`` images.

    ``clean`` and ``poisoned`` are ``[N, C, H, W]`` in [0, 1], the same N images with and without
    the trigger (then defended); ``labels`` ``[N]`` their true classes.
    """
    if clean.shape != poisoned.shape or len(labels) != len(clean):
        raise ValueError("clean, poisoned and labels must describe the same N images")
    clean_pred = predict(model, clean, batch_size)
    poisoned_pred = predict(model, poisoned, batch_size)
    keep = labels != target
    return {
        "CA": accuracy(clean_pred, labels),
        "PA": accuracy(poisoned_pred[keep], labels[keep]),
        "ASR": attack_success_rate(poisoned_pred, labels, target),
    }


def backdoor_outcomes(
    model: nn.Module,
    clean: torch.Tensor,
    poisoned: torch.Tensor,
    labels: torch.Tensor,
    target: int,
    batch_size: int = 256,
) -> dict[str, np.ndarray]:
    """The per-image outcomes behind :func:`backdoor_metrics`, each 100 (yes) or 0 (no) per image.

    ``{"CA": clean image classified correctly, "PA": poisoned image classified correctly,
    "ASR": poisoned image classified as ``target``}``; their means are the rates. Every label
    must differ from ``target``, so the three share one denominator and two defenses (or two
    models) scored on the same images can be compared image by image.
    """
    if clean.shape != poisoned.shape or len(labels) != len(clean):
        raise ValueError("clean, poisoned and labels must describe the same N images")
    if bool((labels == target).any()):
        raise ValueError(
            f"{int((labels == target).sum())} labels equal the target {target}: per-image "
            "outcomes need images of non-target classes only"
        )
    clean_pred = predict(model, clean, batch_size)
    poisoned_pred = predict(model, poisoned, batch_size)
    return {
        "CA": 100.0 * (clean_pred == labels).double().numpy(),
        "PA": 100.0 * (poisoned_pred == labels).double().numpy(),
        "ASR": 100.0 * (poisoned_pred == target).double().numpy(),
    }
