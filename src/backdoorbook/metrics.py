"""Evaluation metrics shared by the chapters.

Definitions (stated once in the book's introduction):
- CA: accuracy on clean test inputs.
- ASR: fraction of triggered inputs predicted as the attacker's target, over inputs whose
  true label is not the target.
Every function returns the denominator with the value, so chapters can report both.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from tqdm import tqdm

from .runtime import progress_enabled


@dataclass(frozen=True)
class Rate:
    """A rate with its denominator: ``value`` in percent over ``n`` samples."""

    value: float
    n: int

    def __str__(self) -> str:
        return f"{self.value:.2f} % (n = {self.n})"


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, batch_size: int = 256, progress: bool = True,
            desc: str = "predict") -> torch.Tensor:
    """Class predictions of ``model`` for ``images`` ``[N, C, H, W]`` in [0, 1], batched.

    Runs on the model's device, in eval mode (the model's mode is restored afterwards).
    Returns a CPU ``LongTensor`` ``[N]``.
    """
    if images.ndim != 4:
        raise ValueError(f"expected [N, C, H, W] images, got shape {tuple(images.shape)}")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = []
    for start in tqdm(range(0, len(images), batch_size), desc=desc, disable=not progress_enabled(progress), leave=False):
        out.append(model(images[start:start + batch_size].to(device)).argmax(1).cpu())
    model.train(was_training)
    return torch.cat(out) if out else torch.empty(0, dtype=torch.long)


def accuracy(predictions: torch.Tensor, labels: torch.Tensor) -> Rate:
    """CA: percentage of ``predictions`` equal to ``labels``."""
    if predictions.shape != labels.shape:
        raise ValueError(f"predictions {tuple(predictions.shape)} and labels {tuple(labels.shape)} differ in shape")
    n = labels.numel()
    if n == 0:
        raise ValueError("accuracy over zero samples is undefined")
    return Rate(100.0 * (predictions == labels).sum().item() / n, n)


def attack_success_rate(predictions: torch.Tensor, labels: torch.Tensor, target: int) -> Rate:
    """ASR: percentage of triggered inputs predicted as ``target``, over inputs whose true label is not ``target``."""
    if predictions.shape != labels.shape:
        raise ValueError(f"predictions {tuple(predictions.shape)} and labels {tuple(labels.shape)} differ in shape")
    keep = labels != target
    n = int(keep.sum())
    if n == 0:
        raise ValueError(f"every label is the target {target}: ASR has an empty denominator")
    return Rate(100.0 * (predictions[keep] == target).sum().item() / n, n)
