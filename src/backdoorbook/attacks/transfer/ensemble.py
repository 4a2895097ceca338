"""Ensemble surrogate: Liu et al., "Delving into Transferable Adversarial Examples and Black-box
Attacks", ICLR 2017, arXiv:1611.02770; logit fusion as in Dong et al., "Boosting Adversarial
Attacks with Momentum", CVPR 2018, arXiv:1710.06081.

An adversarial example that fools several surrogates at once is more likely to fool an unseen
target. :class:`LogitEnsemble` averages the surrogates' logits; :class:`EnsembleMIFGSM` runs
MI-FGSM on it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .mifgsm import MIFGSM


class LogitEnsemble(nn.Module):
    """``mean_k model_k(x)``: averaged logits of models that take the same [0, 1] inputs.

    The ensemble starts in eval mode unless every member is training, so that an attack, which
    restores its surrogate's mode when it returns, leaves eval-mode members in eval mode.
    """

    def __init__(self, models: Sequence[nn.Module]):
        super().__init__()
        if len(models) < 1 or not all(isinstance(m, nn.Module) for m in models):
            raise ValueError("LogitEnsemble needs a non-empty sequence of nn.Module surrogates")
        self.members = nn.ModuleList(models)
        self.training = all(member.training for member in models)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([member(x) for member in self.members]).mean(0)


class EnsembleMIFGSM(MIFGSM):
    """MI-FGSM on the logit average of ``models`` (a sequence of surrogates); other arguments as
    MI-FGSM."""

    def __init__(
        self,
        models: Sequence[nn.Module],
        eps: float = 8 / 255,
        steps: int = 10,
        alpha: float | None = None,
        decay: float = 1.0,
        targeted: bool = False,
        seed: int | None = None,
    ):
        if isinstance(models, nn.Module):
            raise ValueError(
                "EnsembleMIFGSM takes a sequence of surrogate models, got a single module"
            )
        super().__init__(
            LogitEnsemble(models),
            eps=eps,
            steps=steps,
            alpha=alpha,
            decay=decay,
            targeted=targeted,
            seed=seed,
        )
