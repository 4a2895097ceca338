"""A compact DeepLab-style segmentation network that trains on a CPU in minutes.

The design follows DeepLabv3+ (Chen et al., "Encoder-Decoder with Atrous Separable
Convolution for Semantic Image Segmentation", ECCV 2018, arXiv:1802.02611), shrunk for
low-resolution road scenes (e.g. CamVid at 120x90):

- an encoder of strided 3x3 conv-BN-ReLU blocks down to output stride 8, followed by two
  residual blocks with dilated convolutions (dilation 2 and 4);
- an ASPP head: a 1x1 branch, dilated 3x3 branches and an *image-pooling* branch, so every
  output pixel sees the whole image (the context an influencer trigger exploits, IBA,
  ICLR 2024, arXiv:2303.12054);
- a light decoder that fuses the ASPP output with stride-4 features, then bilinear upsampling
  to the input size.

Inputs: float ``[N, 3, H, W]`` in [0, 1] (CamVid normalisation lives inside the model);
outputs: logits ``[N, num_classes, H, W]`` at the input resolution (any H, W).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .layers import conv_bn
from .wrappers import Normalised

#: Per-channel mean / std of the CamVid training images (240x180 mirror), rounded.
CAMVID_MEAN = (0.41, 0.43, 0.43)
CAMVID_STD = (0.30, 0.31, 0.30)


class DilatedResidual(nn.Module):
    """Two dilated 3x3 convolutions with an identity shortcut (channels and size kept)."""

    def __init__(self, channels: int, dilation: int):
        super().__init__()
        self.body = nn.Sequential(
            conv_bn(channels, channels, dilation=dilation),
            nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation, bias=False),
            nn.BatchNorm2d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.body(x))


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling: 1x1, dilated 3x3 branches and global image pooling, fused by
    1x1."""

    def __init__(self, in_ch: int, out_ch: int, rates: Sequence[int] = (2, 4, 6)):
        super().__init__()
        self.branches = nn.ModuleList(
            [conv_bn(in_ch, out_ch, kernel=1)] + [conv_bn(in_ch, out_ch, dilation=r) for r in rates]
        )
        self.pool = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(in_ch, out_ch, 1), nn.ReLU(inplace=True)
        )
        self.project = conv_bn(out_ch * (len(rates) + 2), out_ch, kernel=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.pool(x).expand(-1, -1, *x.shape[2:])
        return self.project(torch.cat([b(x) for b in self.branches] + [pooled], dim=1))


class SmallDeepLab(nn.Module):
    """DeepLabv3+-style net: stride-8 dilated encoder, ASPP with image pooling, stride-4 decoder.

    Args:
        num_classes: output channels (CamVid: 11).
        width: channels of the first stage; later stages use 1.5x, 2x and 3x ``width``.

    Shapes: ``[N, 3, H, W]`` (normalised) -> logits ``[N, num_classes, H, W]``.
    """

    def __init__(self, num_classes: int, width: int = 24):
        super().__init__()
        if num_classes < 2 or width < 4:
            raise ValueError(f"need num_classes >= 2 and width >= 4, got {num_classes} and {width}")
        w1, w2, w3 = width, int(1.5 * width), 2 * width
        self.stem = nn.Sequential(conv_bn(3, w1, stride=2), conv_bn(w1, w1))  # stride 2
        self.stage2 = nn.Sequential(conv_bn(w1, w2, stride=2), conv_bn(w2, w2))  # stride 4
        self.stage3 = nn.Sequential(
            conv_bn(w2, w3, stride=2),
            DilatedResidual(w3, 2),  # stride 8
            DilatedResidual(w3, 4),
        )
        self.aspp = ASPP(w3, w3)
        self.skip = conv_bn(w2, width // 2, kernel=1)
        self.decoder = nn.Sequential(conv_bn(w3 + width // 2, w3), nn.Conv2d(w3, num_classes, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected [N, 3, H, W] images, got shape {tuple(x.shape)}")
        low = self.stage2(self.stem(x))
        high = self.aspp(self.stage3(low))
        high = F.interpolate(high, size=low.shape[2:], mode="bilinear", align_corners=False)
        logits = self.decoder(torch.cat([high, self.skip(low)], dim=1))
        return F.interpolate(logits, size=x.shape[2:], mode="bilinear", align_corners=False)


def small_deeplab(num_classes: int = 11, width: int = 24) -> Normalised:
    """A :class:`SmallDeepLab` wrapped with CamVid normalisation: takes [0, 1] images."""
    return Normalised(SmallDeepLab(num_classes, width), CAMVID_MEAN, CAMVID_STD)
