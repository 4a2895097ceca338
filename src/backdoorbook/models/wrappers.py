"""Model wrappers that keep normalisation inside the model, so callers pass [0, 1] images."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Normalised(nn.Module):
    """``model((x - mean) / std)``: wraps a network trained on normalised inputs.

    Args:
        model: the network; reachable as ``.model`` (e.g. for hooks on its layers).
        mean, std: per-channel statistics, length C.

    Shapes: input ``[N, C, H, W]`` in [0, 1]; output whatever ``model`` returns.
    """

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        if len(mean) != len(std):
            raise ValueError(
                f"mean and std need one value per channel, got {len(mean)} and {len(std)}"
            )
        if any(s <= 0 for s in std):
            raise ValueError(f"std must be positive, got {tuple(std)}")
        self.model = model
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.mean.shape[1]:
            raise ValueError(
                f"expected [N, {self.mean.shape[1]}, H, W] images, got shape {tuple(x.shape)}"
            )
        return self.model((x - self.mean) / self.std)
