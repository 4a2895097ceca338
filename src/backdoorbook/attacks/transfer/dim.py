"""DI-FGSM (DIM): Xie et al., "Improving Transferability of Adversarial Examples with Input
Diversity", CVPR 2019, arXiv:1803.06978.

With probability ``p`` the iterate is resized (bilinear) to a random side ``r ∈ [H, ⌊rate·H⌋)``,
zero-padded to ``⌊rate·H⌋`` with its top and left offsets drawn from ``[0, ⌊rate·H⌋ − r)`` (so
at least one row and one column of padding go to the bottom and the right), and resized back to
``H`` so that fixed-size surrogates work; the gradient is taken through this random
transformation. Combined with momentum (M-DI²-FGSM in the paper). One draw per batch and
iteration. Draw ranges and the resize back follow TransferAttack
(``Trustworthy-AI-Group/TransferAttack`` ``input_transformation/dim.py``); the resize and pad
draws are those of torchattacks' ``DIFGSM``, which does not resize back.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .mifgsm import MIFGSM


class DIM(MIFGSM):
    """Diverse-input MI-FGSM.

    Args:
        resize_rate: outer size as a multiple of the image side (paper and TransferAttack: 1.1).
        diversity_prob: probability ``p`` of transforming in an iteration (0.5).
        Other arguments as :class:`~.mifgsm.MIFGSM`.
    """

    def __init__(
        self,
        model: nn.Module,
        eps: float = 8 / 255,
        steps: int = 10,
        alpha: float | None = None,
        decay: float = 1.0,
        resize_rate: float = 1.1,
        diversity_prob: float = 0.5,
        targeted: bool = False,
        seed: int | None = None,
    ):
        super().__init__(
            model, eps=eps, steps=steps, alpha=alpha, decay=decay, targeted=targeted, seed=seed
        )
        if resize_rate <= 1 or not 0 <= diversity_prob <= 1:
            raise ValueError(
                "need resize_rate > 1 and diversity_prob in [0, 1], "
                f"got {resize_rate}, {diversity_prob}"
            )
        self.resize_rate, self.diversity_prob = resize_rate, diversity_prob

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        if float(self.rand(1)) >= self.diversity_prob:
            return x
        side = x.shape[-1]
        outer = max(int(side * self.resize_rate), side + 1)
        inner = self.randint(side, outer)
        top, left = self.randint(0, outer - inner), self.randint(0, outer - inner)
        resized = F.interpolate(x, size=(inner, inner), mode="bilinear", align_corners=False)
        padded = F.pad(resized, (left, outer - inner - left, top, outer - inner - top), value=0.0)
        return F.interpolate(padded, size=x.shape[-2:], mode="bilinear", align_corners=False)
