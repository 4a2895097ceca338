"""Classifier heads on frozen features."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class CosineClassifier(nn.Module):
    """Baseline++ head: ``logits = scale * normalize(x) @ normalize(W).T``; ``x`` ``[B, D]`` ->
    ``[B, n_way]``.

    ``scale`` 2 is Chen et al.'s value for heads with at most 200 classes.
    """

    def __init__(self, in_features: int, n_way: int, scale: float = 2.0):
        super().__init__()
        if in_features < 1 or n_way < 1 or scale <= 0:
            raise ValueError(
                f"need positive in_features, n_way and scale, got {in_features}, {n_way}, {scale}"
            )
        self.weight = nn.Parameter(torch.empty(n_way, in_features))
        nn.init.kaiming_uniform_(self.weight, a=5**0.5)
        self.scale = scale

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if features.ndim != 2 or features.shape[1] != self.weight.shape[1]:
            raise ValueError(
                f"expected features [B, {self.weight.shape[1]}], got {tuple(features.shape)}"
            )
        return self.scale * F.normalize(features, dim=1) @ F.normalize(self.weight, dim=1).T
