"""SI-FGSM (SIM): Lin et al., "Nesterov Accelerated Gradient and Scale Invariance for Adversarial
Attacks", ICLR 2020, arXiv:1908.06281.

Models are nearly invariant to scaling pixel values, so the gradient is averaged over the
scale copies ``x / 2^i``, i = 0..m−1 (a "model augmentation"); combined with momentum.
"""

from __future__ import annotations

import torch
from torch import nn

from .mifgsm import MIFGSM


class SIM(MIFGSM):
    """Scale-invariant MI-FGSM.

    Args:
        scales: m, number of scale copies (paper: 5); one forward pass over m·B images.
        Other arguments as :class:`~.mifgsm.MIFGSM`.
    """

    def __init__(
        self,
        model: nn.Module,
        eps: float = 8 / 255,
        steps: int = 10,
        alpha: float | None = None,
        decay: float = 1.0,
        scales: int = 5,
        targeted: bool = False,
        seed: int | None = None,
    ):
        super().__init__(
            model, eps=eps, steps=steps, alpha=alpha, decay=decay, targeted=targeted, seed=seed
        )
        if scales < 1:
            raise ValueError(f"scales must be >= 1, got {scales}")
        self.scales = scales

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x / 2**i for i in range(self.scales)])
