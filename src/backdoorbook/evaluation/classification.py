"""Classification metrics: CA, ASR and PA, each a :class:`Rate` with its denominator.

Definitions (stated once in the book's introduction; ZIP, arXiv 2303.12175, for PA):
- CA: accuracy on clean (or defended clean) test inputs.
- ASR: fraction of triggered inputs predicted as the attacker's target, over inputs whose
  true label is not the target.
- PA: accuracy of defended triggered inputs with respect to their true labels.
"""

from __future__ import annotations

from dataclasses import dataclass

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
