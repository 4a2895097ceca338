"""NI-FGSM: Lin et al., "Nesterov Accelerated Gradient and Scale Invariance for Adversarial
Attacks", ICLR 2020, arXiv:1908.06281.

MI-FGSM whose gradient is taken at the Nesterov look-ahead point ``x + α·μ·g`` instead of
at ``x``, so the update "looks ahead" along the accumulated momentum.
"""

from __future__ import annotations

import torch

from .mifgsm import MIFGSM


class NIFGSM(MIFGSM):
    """Nesterov iterative FGSM; arguments as :class:`~.mifgsm.MIFGSM`."""

    def lookahead(self, adv: torch.Tensor, momentum: torch.Tensor) -> torch.Tensor:
        return adv + self.decay * self.alpha * momentum
