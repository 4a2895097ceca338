"""TI-FGSM (TIM): Dong et al., "Evading Defenses to Transferable Adversarial Examples by
Translation-Invariant Attacks", CVPR 2019, arXiv:1904.02884.

The gradient is convolved with a Gaussian kernel before the momentum update, which
approximates the average gradient over small translations of the image and makes the
perturbation less specific to the surrogate's discriminative regions.

Kernel size at 32 px: a ``k``-tap kernel spanning ±3σ has σ = (k − 1)/6 pixels. TransferAttack's
15 × 15 kernel on 224 px ImageNet images has σ = 2.33 px, 1.04 % of the image side; the same
share of a 32 px CIFAR image is σ = 0.33 px, which is the 3 × 3 kernel (the default here). It
barely smooths: its centre weight is 0.96. A 5 × 5 kernel (σ = 0.67 px) would correspond to a
29-tap kernel at 224 px.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...fidelity import Deviation
from .mifgsm import MIFGSM

DEVIATIONS = (
    Deviation(
        item="TI kernel size",
        authors="a 15 x 15 Gaussian (nsig 3, sigma 2.33 px) on 224 px images "
        "(Trustworthy-AI-Group/TransferAttack@2663e4a transferattack/input_transformation/"
        "tim.py:37,42-52,73)",
        ours="a 3 x 3 Gaussian (nsig 3, sigma 0.33 px) on 32 px images: the same sigma as a "
        "share of the image side; its centre weight is 0.96, so TI-MI is close to MI-FGSM",
        why="CIFAR-10 images are 7 times smaller than ImageNet's; the 15-tap kernel would blur "
        "the gradient over half the image",
        claims=("input-transforms-add-to-mi",),
        where=("backdoorbook.attacks.transfer.tim.TIM",),
    ),
)


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
        kernel_size: side of the Gaussian kernel, odd. Default 3: TransferAttack's 15 on 224 px
            images scaled to 32 px CIFAR images (see the module docstring).
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
        kernel_size: int = 3,
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
