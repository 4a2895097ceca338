"""CIFAR-10 ResNets of He et al. (2016), "Deep Residual Learning for Image Recognition"
(CVPR 2016, arXiv:1512.03385), section 4.2: the 6n+2-layer CIFAR variant with widths
16/32/64 and option-A shortcuts (identity with stride-2 subsampling and zero-padded extra
channels, so shortcuts add no parameters).

The mirrored checkpoints are Idelbayev's re-implementation (GitHub
``akamaster/pytorch_resnet_cifar10``): ResNet-20/32/44/56, reported test accuracy
91.78 / 92.78 / 93.14 / 93.62 %, trained on inputs normalised with ImageNet statistics.
:func:`load_cifar_resnet` returns them wrapped in :class:`Normalised`, so callers pass
[0, 1] images.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .wrappers import IMAGENET_MEAN, IMAGENET_STD, Normalised

DEPTHS = (20, 32, 44, 56)
REPORTED_ACCURACY = {20: 91.78, 32: 92.78, 44: 93.14, 56: 93.62}


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an option-A (zero-padding) shortcut."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.pad_channels = planes - in_planes
        self.stride = stride

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1 and self.pad_channels == 0:
            return x
        half = self.pad_channels // 2
        return F.pad(
            x[:, :, :: self.stride, :: self.stride], (0, 0, 0, 0, half, self.pad_channels - half)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """ResNet-(6n+2) for 32x32 inputs: conv 16 → 3 stages of n blocks (16, 32, 64) → pool → linear.

    Expects *normalised* inputs ``[N, 3, 32, 32]``; returns logits ``[N, num_classes]``.
    """

    def __init__(
        self, depth: int = 20, num_classes: int = 10, widths: tuple[int, int, int] = (16, 32, 64)
    ):
        super().__init__()
        if (depth - 2) % 6 != 0 or depth < 8:
            raise ValueError(f"CIFAR ResNet depth must be 6n+2 with n >= 1, got {depth}")
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(3, widths[0], 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        in_planes = widths[0]
        for index, (planes, stride) in enumerate(zip(widths, (1, 2, 2)), start=1):
            blocks = []
            for block_stride in [stride] + [1] * (n - 1):
                blocks.append(BasicBlock(in_planes, planes, block_stride))
                in_planes = planes
            setattr(self, f"layer{index}", nn.Sequential(*blocks))
        self.linear = nn.Linear(widths[2], num_classes)
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(module.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)


def cifar_resnet(depth: int = 20, num_classes: int = 10, **kwargs) -> Normalised:
    """A randomly initialised CIFAR ResNet wrapped with ImageNet normalisation ([0, 1] inputs)."""
    return Normalised(CifarResNet(depth, num_classes, **kwargs), IMAGENET_MEAN, IMAGENET_STD)


def load_cifar_resnet_checkpoint(path: str | Path, depth: int, num_classes: int = 10) -> Normalised:
    """Load an akamaster-format checkpoint (``{'state_dict': ..., 'best_prec1': ...}``).

    Loads with ``weights_only=True`` (no arbitrary unpickling) and strips the ``module.``
    prefix that ``nn.DataParallel`` left on every key. Returns the wrapped model in eval mode. A
    file that cannot be read (missing, truncated, not a checkpoint) raises ``ValueError`` naming it.
    """
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as err:
        raise ValueError(f"cannot read the CIFAR ResNet checkpoint {path}: {err}") from err
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise ValueError(
            f"{path}: expected a state dict or {{'state_dict': ...}}, "
            f"got {type(checkpoint).__name__}"
        )
    state = {key.removeprefix("module."): value for key, value in state.items()}
    model = cifar_resnet(depth, num_classes)
    try:
        model.model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ValueError(f"{path} does not hold a CIFAR ResNet-{depth}: {err}") from err
    return model.eval()


def load_cifar_resnet(depth: int) -> Normalised:
    """The mirrored pretrained ResNet-``depth`` (20, 32, 44 or 56), checksum-verified."""
    from ..data import load_manifest, locate

    if depth not in DEPTHS:
        raise ValueError(f"no pretrained CIFAR ResNet-{depth}; available depths: {DEPTHS}")
    files = [
        f.path
        for f in load_manifest("cifar10_resnets").files
        if Path(f.path).name.startswith(f"resnet{depth}-")
    ]
    if len(files) != 1:
        raise ValueError(
            f"the cifar10_resnets manifest lists {len(files)} files for ResNet-{depth}, expected 1"
        )
    return load_cifar_resnet_checkpoint(locate("cifar10_resnets", files[0]), depth)
