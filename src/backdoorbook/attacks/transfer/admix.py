"""Admix: Wang et al., "Admix: Enhancing the Transferability of Adversarial Attacks", ICCV 2021,
arXiv:2102.00436.

Each iterate is mixed with a small share η of another image, ``x + η·x'``, ``mixes`` times, and
every mix is also scale-augmented as in SIM (``/ 2^i``, i = 0..scales−1); the gradient is
averaged over all ``mixes · scales`` copies. Combined with momentum. The admixed images x' are
the current batch in a random order (a fresh permutation per mix, detached from the gradient),
which ignores labels and can pair an image with itself or with one of its own class; the
Admix authors' code (``JHL-HUST/Admix`` ``mi_admix.py``, ``tf.random.shuffle`` over the batch)
and TransferAttack mix the same way, although the paper speaks of images from other
categories.
"""

from __future__ import annotations

import torch
from torch import nn

from .mifgsm import MIFGSM


class Admix(MIFGSM):
    """Admix MI-FGSM.

    Args:
        mixes: m₂, number of admixed images per input (paper: 3).
        strength: η, share of the admixed image (paper: 0.2).
        scales: m₁, scale copies of every mix (paper: 5).
        Other arguments as :class:`~.mifgsm.MIFGSM`.
    """

    def __init__(
        self,
        model: nn.Module,
        eps: float = 8 / 255,
        steps: int = 10,
        alpha: float | None = None,
        decay: float = 1.0,
        mixes: int = 3,
        strength: float = 0.2,
        scales: int = 5,
        targeted: bool = False,
        seed: int | None = None,
    ):
        super().__init__(
            model, eps=eps, steps=steps, alpha=alpha, decay=decay, targeted=targeted, seed=seed
        )
        if mixes < 1 or scales < 1 or not 0 <= strength <= 1:
            raise ValueError(
                "need mixes >= 1, scales >= 1 and strength in [0, 1], "
                f"got {mixes}, {scales}, {strength}"
            )
        self.mixes, self.strength, self.scales = mixes, strength, scales

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        others = [
            x[torch.randperm(len(x), generator=self.generator, device=x.device)].detach()
            for _ in range(self.mixes)
        ]
        mixed = torch.cat([x + self.strength * other for other in others])
        return torch.cat([mixed / 2**i for i in range(self.scales)])
