"""Losses shared by more than one training loop."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def mask_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """BCE-with-logits plus soft IoU loss (the BadSAM / SAM-Adapter objective), averaged over the
    batch.

    ``logits`` ``[B, 1, H, W]``; ``target`` ``[B, 1, H, W]`` or ``[B, H, W]`` in {0, 1}. The soft
    IoU term is ``1 - sum(p t) / sum(p + t - p t)`` per image with ``p = sigmoid(logits)``.
    """
    target = target.reshape(logits.shape).float()
    bce = F.binary_cross_entropy_with_logits(logits, target)
    prob = torch.sigmoid(logits)
    inter = (prob * target).sum((1, 2, 3))
    union = (prob + target - prob * target).sum((1, 2, 3))
    return bce + (1 - inter / union.clamp_min(1e-6)).mean()
