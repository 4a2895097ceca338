"""Conv-4: the standard small backbone of few-shot learning, sized for a CPU.

Four blocks of 3x3 convolution (``width`` channels), batch norm, ReLU and 2x2 max pooling,
flattened into a feature vector (Vinyals et al., "Matching Networks for One Shot Learning",
NeurIPS 2016, arXiv:1606.04080; the Conv-4 of Chen et al., "A Closer Look at Few-shot
Classification", ICLR 2019, arXiv:1904.04232). The FLBA chapter pre-trains it on the 64 base
classes of the miniImageNet mirror at a reduced resolution (:data:`FLBA_IMAGE_SIZE` = 42 px,
the 84 px images average-pooled 2x2) so that episodes with gradient-based attacks fit a CPU.

Inputs are [0, 1] images ``[N, 3, H, W]``; ImageNet normalisation lives in the
:class:`~backdoorbook.models.wrappers.Normalised` wrapper that :func:`conv4_backbone` returns.
The backbone returns features ``[N, width * (H // 16) ** 2]`` (256 at 42 px, width 64).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .. import artifacts
from .wrappers import IMAGENET_MEAN, IMAGENET_STD, Normalised

#: Side of the images the FLBA backbone is trained and attacked at (84 px mirror, pooled 2x2).
FLBA_IMAGE_SIZE = 42


class Conv4(nn.Module):
    """Four conv-BN-ReLU-maxpool blocks and a flatten; ``forward`` returns features ``[N, D]``."""

    def __init__(self, width: int = 64):
        super().__init__()
        layers, in_ch = [], 3
        for _ in range(4):
            layers += [
                nn.Conv2d(in_ch, width, 3, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]
            in_ch = width
        self.blocks = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x).flatten(1)


def conv4_backbone(width: int = 64) -> Normalised:
    """A fresh Conv-4 feature extractor taking [0, 1] images (ImageNet normalisation inside)."""
    return Normalised(Conv4(width), IMAGENET_MEAN, IMAGENET_STD)


def downsample_images(images: torch.Tensor, size: int = FLBA_IMAGE_SIZE) -> torch.Tensor:
    """Area-resize [0, 1] images ``[N, 3, H, W]`` to ``size`` x ``size`` (84 -> 42 is a 2x2
    average)."""
    if images.ndim != 4:
        raise ValueError(f"expected [N, C, H, W] images, got shape {tuple(images.shape)}")
    return F.adaptive_avg_pool2d(images, size)


def load_flba_backbone(name: str, width: int = 64) -> Normalised:
    """The project's Conv-4 pre-trained on miniImageNet's 64 base classes, from artifact ``name``.

    The artifact's sha256 is verified; the backbone comes back frozen, in eval mode.
    """
    state = artifacts.load_artifact(name)
    backbone = conv4_backbone(width)
    backbone.load_state_dict(state)
    backbone.eval().requires_grad_(False)
    return backbone
