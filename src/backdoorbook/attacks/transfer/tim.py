"""TI-FGSM (TIM): Dong et al., "Evading Defenses to Transferable Adversarial Examples by
Translation-Invariant Attacks", CVPR 2019, arXiv:1904.02884.

The gradient is convolved with a Gaussian kernel before the momentum update, which
approximates the average gradient over small translations of the image and makes the
perturbation less specific to the surrogate's discriminative regions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .mifgsm import MIFGSM


def gaussian_kernel(size: int, nsig: float) -> torch.Tensor:
    """Normalised 2-D Gaussian ``[size, size]``: the outer product of the normal pdf on
    ``linspace(-nsig, nsig, size)``."""
    if size < 1 or size % 2 == 0 or nsig <= 0:
        raise ValueError(f"kernel size must be odd and positive and nsig > 0, got {size}, {nsig}")
    x = torch.linspace(-nsig, nsig, size, dtype=torch.float64)
    pdf = torch.exp(-(x**2) / 2) / (2 * torch.pi) ** 0.5
    kernel = torch.outer(pdf, pdf)
    return (kernel / kernel.sum()).float()


class TIM(MIFGSM):
    """Translation-invariant MI-FGSM.

    Args:
        kernel_size: side of the Gaussian kernel, odd. Default 5 for 32x32 CIFAR images (the
            papers use 7-15 on 224-299 px ImageNet images).
        nsig: the kernel spans ±``nsig`` standard deviations (3, as in TransferAttack).
        Other arguments as :class:`~.mifgsm.MIFGSM`.
    """

    def __init__(
        self,
        model: nn.Module,
        eps: float = 8 / 255,
        steps: int = 10,
        alpha: float | None = None,
        decay: float = 1.0,
        kernel_size: int = 5,
        nsig: float = 3.0,
        targeted: bool = False,
        seed: int | None = None,
    ):
        super().__init__(
            model, eps=eps, steps=steps, alpha=alpha, decay=decay, targeted=targeted, seed=seed
        )
        self.kernel = gaussian_kernel(kernel_size, nsig)

    def gradient(
        self, adv: torch.Tensor, labels: torch.Tensor, momentum: torch.Tensor
    ) -> torch.Tensor:
        grad = self.loss_gradient(adv, labels, momentum)
        channels = grad.shape[1]
        weight = self.kernel.to(grad)[None, None].expand(channels, 1, -1, -1)
        return F.conv2d(grad, weight, padding="same", groups=channels)
