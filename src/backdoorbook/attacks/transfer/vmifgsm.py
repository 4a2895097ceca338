"""VMI-FGSM: Wang & He, "Enhancing the Transferability of Adversarial Attacks through Variance
Tuning", CVPR 2021, arXiv:2103.15571.

Before momentum, the current gradient is corrected by the previous iteration's *gradient
variance* ``v = mean_i ∇L(x + r_i) − ∇L(x)``, ``r_i ~ U(−β·ε, β·ε)``, i = 1..N, which
stabilises the update direction using the loss landscape around the iterate.
"""

from __future__ import annotations

import torch
from torch import nn

from .mifgsm import MIFGSM


class VMIFGSM(MIFGSM):
    """Variance-tuned MI-FGSM.

    Args:
        samples: N, neighbours drawn per iteration (paper: 20). All N are one batch of N·B images.
        beta: neighbourhood radius as a multiple of ``eps`` (paper: 1.5).
        Other arguments as :class:`~.mifgsm.MIFGSM`.
    """

    def __init__(
        self,
        model: nn.Module,
        eps: float = 8 / 255,
        steps: int = 10,
        alpha: float | None = None,
        decay: float = 1.0,
        samples: int = 20,
        beta: float = 1.5,
        targeted: bool = False,
        seed: int | None = None,
    ):
        super().__init__(
            model, eps=eps, steps=steps, alpha=alpha, decay=decay, targeted=targeted, seed=seed
        )
        if samples < 1 or beta <= 0:
            raise ValueError(f"need samples >= 1 and beta > 0, got {samples} and {beta}")
        self.samples, self.beta = samples, beta
        self.variance: torch.Tensor | float = 0.0

    def prepare(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.variance = torch.zeros_like(images)

    def gradient(
        self, adv: torch.Tensor, labels: torch.Tensor, momentum: torch.Tensor
    ) -> torch.Tensor:
        current = self.loss_gradient(adv, labels, momentum)
        radius = self.beta * self.eps
        noise = self.rand(self.samples, *adv.shape) * (2 * radius) - radius
        neighbours = (adv.unsqueeze(0) + noise).flatten(0, 1)
        # Loss is a mean over N·B images, so summing the N blocks gives the mean neighbour gradient.
        neighbour_grad = (
            self.loss_gradient(
                neighbours, labels.repeat(self.samples), momentum.repeat(self.samples, 1, 1, 1)
            )
            .view(self.samples, *adv.shape)
            .sum(0)
        )
        direction = current + self.variance
        self.variance = neighbour_grad - current
        return direction
