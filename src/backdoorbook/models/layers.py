"""Building blocks shared by the architectures."""

from __future__ import annotations

from torch import nn


def conv_bn(
    in_ch: int,
    out_ch: int,
    kernel: int = 3,
    stride: int = 1,
    *,
    groups: int = 1,
    dilation: int = 1,
    activation: type[nn.Module] | None = nn.ReLU,
) -> nn.Sequential:
    """``Conv2d`` (no bias, "same" padding for odd kernels) → ``BatchNorm2d`` → ``activation`` (in
    place).

    ``activation=None`` leaves the activation out (a linear bottleneck).
    """
    padding = dilation * (kernel // 2)
    layers = [
        nn.Conv2d(
            in_ch, out_ch, kernel, stride, padding, dilation=dilation, groups=groups, bias=False
        ),
        nn.BatchNorm2d(out_ch),
    ]
    if activation is not None:
        layers.append(activation(inplace=True))
    return nn.Sequential(*layers)
