"""Classifier heads on frozen features.

:class:`CosineClassifier` is the Baseline++ head of Chen et al., "A Closer Look at Few-shot
Classification" (ICLR 2019, arXiv:1904.04232): a cosine classifier whose class weights are
weight-normalised (Salimans and Kingma, "Weight Normalization", NeurIPS 2016, arXiv:1602.07868),
so each class ``c`` has a direction ``v_c`` and a learnable norm ``g_c``, times a fixed factor.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: Added to the feature norm before dividing by it (Baseline++'s ``x / (||x|| + 1e-5)``).
FEATURE_EPS = 1e-5


def cosine_logits(
    features: torch.Tensor, weight: torch.Tensor, gain: torch.Tensor, scale: float
) -> torch.Tensor:
    """``scale * g_c * cos(x, v_c)``: features ``[..., B, D]``, directions ``weight``
    ``[..., K, D]`` and gains ``[..., K]`` (leading dimensions broadcast) -> logits ``[..., B, K]``.

    The features are divided by ``||x|| + FEATURE_EPS``, the directions by their norm.
    """
    x = features / (features.norm(dim=-1, keepdim=True) + FEATURE_EPS)
    w = gain.unsqueeze(-1) * F.normalize(weight, dim=-1)
    return scale * x @ w.transpose(-1, -2)


class CosineClassifier(nn.Module):
    """Baseline++ head: ``logits[b, c] = scale * g_c * cos(x_b, v_c)``; ``x`` ``[B, D]`` ->
    ``[B, n_way]``.

    Attributes:
        weight: the class directions ``v`` ``[n_way, D]``, initialised as ``nn.Linear``'s
            weight (uniform in ``+-1/sqrt(D)``).
        gain: the learnable class norms ``g`` ``[n_way]``, initialised to ``||v_c||`` (about
            ``1/sqrt(3)``), so the initial logit scale per class is about ``scale / sqrt(3)``.
        scale: the fixed factor, Chen et al.'s 2 for heads with at most 200 classes.
    """

    def __init__(self, in_features: int, n_way: int, scale: float = 2.0):
        super().__init__()
        if in_features < 1 or n_way < 1 or scale <= 0:
            raise ValueError(
                f"need positive in_features, n_way and scale, got {in_features}, {n_way}, {scale}"
            )
        self.weight = nn.Parameter(torch.empty(n_way, in_features))
        nn.init.kaiming_uniform_(self.weight, a=5**0.5)
        self.gain = nn.Parameter(self.weight.detach().norm(dim=1))
        self.scale = scale

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if features.ndim != 2 or features.shape[1] != self.weight.shape[1]:
            raise ValueError(
                f"expected features [B, {self.weight.shape[1]}], got {tuple(features.shape)}"
            )
        return cosine_logits(features, self.weight, self.gain, self.scale)
