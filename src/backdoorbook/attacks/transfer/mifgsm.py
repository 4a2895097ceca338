"""MI-FGSM: Dong et al., "Boosting Adversarial Attacks with Momentum", CVPR 2018, arXiv:1710.06081.

Accumulates the L1-normalised gradient with decay μ, ``g ← μ·g + ∇/‖∇‖₁``, and steps along
``sign(g)``; the momentum stabilises the update direction and escapes poor local maxima of the
surrogate, which improves transfer. Every input transformation below is combined with it.
"""

from __future__ import annotations

import torch
from torch import nn

from .base import TransferAttack, l1_normalise


class MIFGSM(TransferAttack):
    """Momentum iterative FGSM (``decay`` μ = 1.0 by default); other arguments as
    :class:`TransferAttack`."""

    def __init__(
        self,
        model: nn.Module,
        eps: float = 8 / 255,
        steps: int = 10,
        alpha: float | None = None,
        decay: float = 1.0,
        targeted: bool = False,
        seed: int | None = None,
    ):
        super().__init__(
            model, eps=eps, steps=steps, alpha=alpha, decay=decay, targeted=targeted, seed=seed
        )

    def update_momentum(self, grad: torch.Tensor, momentum: torch.Tensor) -> torch.Tensor:
        return l1_normalise(grad) + momentum * self.decay
