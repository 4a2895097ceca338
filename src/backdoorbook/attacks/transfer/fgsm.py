"""Gradient-sign baselines: FGSM and its iterative form I-FGSM.

- FGSM: Goodfellow, Shlens & Szegedy, "Explaining and Harnessing Adversarial Examples",
  ICLR 2015, arXiv:1412.6572. One step ``x + eps · sign(∇x L)``.
- I-FGSM (BIM): Kurakin, Goodfellow & Bengio, "Adversarial Examples in the Physical World",
  ICLR 2017 workshop, arXiv:1607.02533. ``steps`` steps of size ``alpha``, each projected onto the
  ε-ball. Known to over-fit the surrogate and transfer worse than FGSM or MI-FGSM.
"""

from __future__ import annotations

from torch import nn

from .base import TransferAttack


class FGSM(TransferAttack):
    """One signed-gradient step of size ``eps`` (``steps`` = 1, ``alpha`` = ``eps``). Other
    arguments as the base."""

    def __init__(
        self,
        model: nn.Module,
        eps: float = 8 / 255,
        targeted: bool = False,
        seed: int | None = None,
    ):
        super().__init__(
            model, eps=eps, steps=1, alpha=eps, decay=0.0, targeted=targeted, seed=seed
        )


class IFGSM(TransferAttack):
    """I-FGSM / BIM: the template with no hook overridden (``steps`` = 10,
    ``alpha`` = ``eps / steps``)."""
