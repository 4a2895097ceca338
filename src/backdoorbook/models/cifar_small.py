"""Three small CIFAR-10 classifiers from architecture families other than the ResNets.

They serve as black-box *targets* in the transferability chapter: adversarial examples
crafted on a ResNet surrogate are expected to transfer less to networks built differently.
All three take [0, 1] images ``[N, 3, 32, 32]`` (CIFAR-10 normalisation lives in the
:class:`~backdoorbook.models.wrappers.Normalised` wrapper the builders return) and return
logits ``[N, num_classes]``. They are sized to train in minutes on one CPU thread.

- :class:`VGGSmall`: plain 3x3 conv-BN-ReLU stacks with max pooling, no shortcuts
  (Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image
  Recognition", ICLR 2015, arXiv:1409.1556).
- :class:`MobileNetV2Small`: inverted residual blocks with depthwise convolutions and linear
  bottlenecks (Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks",
  CVPR 2018, arXiv:1801.04381).
- :class:`ViTSmall`: a patch-8 Vision Transformer with a class token and learned position
  embeddings (Dosovitskiy et al., "An Image is Worth 16x16 Words", ICLR 2021, arXiv:2010.11929).
"""

from __future__ import annotations

import torch
from torch import nn

from ..artifacts import artifact_provenance, load_artifact
from .cifar_resnet import cifar_resnet
from .layers import conv_bn
from .wrappers import Normalised

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


def _mobile_conv_bn(
    in_ch: int, out_ch: int, kernel: int = 3, stride: int = 1, groups: int = 1, act: bool = True
) -> nn.Sequential:
    """MobileNetV2's conv-BN: ReLU6 after depthwise and 1x1 convolutions, ReLU after the stem, none
    if not ``act``."""
    activation = (nn.ReLU6 if groups > 1 or kernel == 1 else nn.ReLU) if act else None
    return conv_bn(in_ch, out_ch, kernel, stride, groups=groups, activation=activation)


class VGGSmall(nn.Module):
    """VGG-style CNN: stages of two conv-BN-ReLU layers, each followed by 2x2 max pooling, then
    global average pooling and one linear layer (a flattened 2048-wide head trained unstably at
    the recipe's learning rate).

    Args:
        widths: channels of the three stages (32x32, 16x16, 8x8 resolution).
        num_classes: output logits.
    """

    def __init__(self, widths: tuple[int, int, int] = (32, 64, 128), num_classes: int = 10):
        super().__init__()
        layers, in_ch = [], 3
        for width in widths:
            layers += [conv_bn(in_ch, width), conv_bn(width, width), nn.MaxPool2d(2)]
            in_ch = width
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(in_ch, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand → 3x3 depthwise → 1x1 linear projection (+ identity if shapes
    match)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, expansion: int):
        super().__init__()
        hidden = in_ch * expansion
        self.block = nn.Sequential(
            _mobile_conv_bn(in_ch, hidden, 1),
            _mobile_conv_bn(hidden, hidden, 3, stride, groups=hidden),
            _mobile_conv_bn(hidden, out_ch, 1, act=False),
        )
        self.residual = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return x + out if self.residual else out


class MobileNetV2Small(nn.Module):
    """A narrow MobileNetV2 for 32x32 inputs (feature maps 32 → 16 → 8 → 4 → 4).

    Args:
        config: ``(expansion, channels, blocks, first_stride)`` per stage, as in the paper's
            table 2.
        stem: channels of the first (full-resolution) 3x3 convolution.
        head: channels of the final 1x1 convolution before global average pooling.
    """

    def __init__(
        self,
        config: tuple[tuple[int, int, int, int], ...] = (
            (1, 16, 1, 2),
            (4, 24, 2, 2),
            (4, 48, 2, 2),
            (4, 96, 2, 1),
        ),
        stem: int = 24,
        head: int = 256,
        num_classes: int = 10,
    ):
        super().__init__()
        layers, in_ch = [_mobile_conv_bn(3, stem)], stem
        for expansion, channels, blocks, stride in config:
            for index in range(blocks):
                layers.append(
                    InvertedResidual(in_ch, channels, stride if index == 0 else 1, expansion)
                )
                in_ch = channels
        layers.append(_mobile_conv_bn(in_ch, head, 1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(head, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class ViTSmall(nn.Module):
    """Vision Transformer: non-overlapping ``patch`` x ``patch`` patches → pre-norm encoder → class
    token.

    Args:
        patch: patch side (8 gives 16 tokens on 32x32 images; cheap enough to train on one CPU
            thread).
        dim, depth, heads, mlp_ratio: width, number of encoder layers, attention heads, MLP
            expansion.
    """

    def __init__(
        self,
        patch: int = 8,
        dim: int = 128,
        depth: int = 4,
        heads: int = 4,
        mlp_ratio: int = 2,
        image_size: int = 32,
        num_classes: int = 10,
    ):
        super().__init__()
        if image_size % patch:
            raise ValueError(f"image size {image_size} is not a multiple of the patch size {patch}")
        tokens = (image_size // patch) ** 2
        self.embed = nn.Conv2d(3, dim, patch, patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.position = nn.Parameter(torch.randn(1, tokens + 1, dim) * 0.02)
        layer = nn.TransformerEncoderLayer(
            dim,
            heads,
            dim * mlp_ratio,
            dropout=0.0,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.embed(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.cls_token.expand(len(x), -1, -1), tokens], 1) + self.position
        return self.head(self.norm(self.encoder(tokens))[:, 0])


#: Builders of the unwrapped networks, by the name stored in their artifacts' provenance.
SMALL_ARCHITECTURES = {"vgg": VGGSmall, "mobilenetv2": MobileNetV2Small, "vit": ViTSmall}


def cifar_small(name: str, num_classes: int = 10, **config) -> Normalised:
    """A randomly initialised CIFAR-10 net (``"vgg"``, ``"mobilenetv2"`` or ``"vit"``) taking [0, 1]
    images.

    ``config`` overrides the architecture's keyword arguments (e.g. ``widths=(64, 128, 256)``).
    """
    if name not in SMALL_ARCHITECTURES:
        raise ValueError(
            f"unknown architecture {name!r}; choose one of {', '.join(SMALL_ARCHITECTURES)}"
        )
    return Normalised(
        SMALL_ARCHITECTURES[name](num_classes=num_classes, **config), CIFAR10_MEAN, CIFAR10_STD
    )


def _as_tuples(value):
    """JSON lists back to the tuples the architectures take."""
    return tuple(_as_tuples(v) for v in value) if isinstance(value, list) else value


def cifar_target(architecture: str, **config) -> Normalised:
    """The untrained network of one of chapter 6's project-trained models: a small net of
    :data:`SMALL_ARCHITECTURES`, or ``"resnet20"``, the ResNet-20 that the same short recipe
    trains as a control for training quality."""
    if architecture == "resnet20":
        return cifar_resnet(20, **config)
    return cifar_small(architecture, **config)


def load_cifar_target(artifact: str) -> Normalised:
    """A project-trained model from ``artifacts/<artifact>`` (sha256-verified), in eval mode.

    The architecture and its configuration are read from the artifact's provenance.
    """
    record = artifact_provenance(artifact)
    config = {k: _as_tuples(v) for k, v in record.get("architecture_config", {}).items()}
    model = cifar_target(record["architecture"], **config)
    model.load_state_dict(load_artifact(artifact))
    return model.eval()
