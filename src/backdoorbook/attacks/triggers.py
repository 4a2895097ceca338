"""Backdoor triggers as pure functions on float images ``[N, C, H, W]`` in [0, 1].

Every function takes RGB images ``[N, 3, H, W]`` (anything else, a channels-last batch
included, is rejected with a message naming the layout), returns a new tensor (inputs are
never modified), keeps the shape, dtype and device of its input, and stays inside [0, 1]. Random
ingredients (the blend pattern, the WaNet warp field) are made by separate seeded constructors, so
one trigger can be applied to the training set and, identically, to the test set.

- :func:`badnets` — a small checkerboard patch in a corner (Gu et al., "BadNets: Identifying
  Vulnerabilities in the Machine Learning Model Supply Chain", arXiv 1708.06733).
- :func:`blended` — alpha-blend a full-image pattern (Chen et al., "Targeted Backdoor Attacks on
  Deep Learning Systems Using Data Poisoning", arXiv 1712.05526).
- :func:`wanet` — a smooth, fixed warp of the pixel grid (Nguyen & Tran, "WaNet — Imperceptible
  Warping-based Backdoor Attack", ICLR 2021, arXiv 2102.10369).
- :func:`sig` — add a horizontal sinusoid (Barni et al., "A New Backdoor Attack in CNNs by
  Training Set Corruption Without Label Poisoning", ICIP 2019, arXiv 1902.11237).

Threat model: the attacker controls a fraction of the training data (see
:mod:`backdoorbook.attacks.poisoning`); at test time they add the same trigger to any input.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..tensors import check_images

CORNERS = ("bottom_right", "bottom_left", "top_right", "top_left")


def checkerboard(size: int, channels: int = 3) -> torch.Tensor:
    """A ``[channels, size, size]`` black-and-white checkerboard (top-left pixel white)."""
    if size < 1:
        raise ValueError(f"patch size must be >= 1, got {size}")
    rows, cols = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    return ((rows + cols) % 2 == 0).float().expand(channels, size, size).clone()


def stamp(images: torch.Tensor, patch: torch.Tensor, top: int, left: int) -> torch.Tensor:
    """Paste ``patch`` ``[C, h, w]`` (values in [0, 1]) at row ``top``, column ``left`` of every
    image."""
    check_images(images, channels=3)
    if patch.ndim != 3 or patch.shape[0] != images.shape[1]:
        raise ValueError(f"patch must be [C={images.shape[1]}, h, w], got {tuple(patch.shape)}")
    _, _, h, w = images.shape
    ph, pw = patch.shape[1:]
    if not (0 <= top and top + ph <= h and 0 <= left and left + pw <= w):
        raise ValueError(f"a {ph}x{pw} patch at ({top}, {left}) does not fit in {h}x{w} images")
    out = images.clone()
    out[:, :, top : top + ph, left : left + pw] = patch.to(images)
    return out


def badnets(
    images: torch.Tensor, size: int = 3, margin: int = 1, corner: str = "bottom_right"
) -> torch.Tensor:
    """BadNets: a ``size``×``size`` checkerboard ``margin`` pixels from ``corner``
    (ZIP's victims: 3×3)."""
    check_images(images, channels=3)
    if corner not in CORNERS:
        raise ValueError(f"unknown corner {corner!r}; choose one of {', '.join(CORNERS)}")
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    _, c, h, w = images.shape
    top = h - margin - size if corner.startswith("bottom") else margin
    left = w - margin - size if corner.endswith("right") else margin
    return stamp(images, checkerboard(size, c), top, left)


def blend_pattern(shape: tuple[int, int, int] = (3, 32, 32), seed: int = 0) -> torch.Tensor:
    """A fixed uniform-noise pattern ``[C, H, W]`` in [0, 1] for :func:`blended` (seeded).

    The original attack blends a cartoon (Hello Kitty); noise is the other common choice and
    needs no image file.
    """
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"shape must be (C, H, W) with positive sizes, got {shape}")
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed))


def blended(images: torch.Tensor, pattern: torch.Tensor, alpha: float = 0.2) -> torch.Tensor:
    """Blended: ``(1 - alpha) x + alpha pattern``; ``pattern`` ``[C, H, W]`` in [0, 1]
    (ZIP: alpha 0.2)."""
    check_images(images, channels=3)
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    if pattern.shape != images.shape[1:]:
        raise ValueError(
            f"pattern shape {tuple(pattern.shape)} does not match images {tuple(images.shape[1:])}"
        )
    return (1 - alpha) * images + alpha * pattern.to(images)


def wanet_field(size: int = 32, k: int = 4, seed: int = 0) -> torch.Tensor:
    """WaNet's warp field ``[1, size, size, 2]``: a random ``k``×``k`` control grid in [-1, 1],
    normalised by its mean absolute value and bicubically upsampled (the paper uses k = 4)."""
    if k < 2 or size < k:
        raise ValueError(f"need 2 <= k <= size, got k={k}, size={size}")
    grid = torch.rand(1, 2, k, k, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    grid = grid / grid.abs().mean()
    return F.interpolate(grid, size=(size, size), mode="bicubic", align_corners=True).permute(
        0, 2, 3, 1
    )


def wanet(images: torch.Tensor, field: torch.Tensor, strength: float = 0.5) -> torch.Tensor:
    """WaNet: resample every image on the identity grid displaced by ``strength * field / H``.

    ``field`` comes from :func:`wanet_field` (same spatial size as the images); the paper's
    ``s`` is ``strength`` (0.5 on CIFAR-10). Sampling is bilinear, coordinates clamped to the image.
    """
    check_images(images, channels=3)
    n, _, h, w = images.shape
    if field.shape != (1, h, w, 2):
        raise ValueError(f"field must be [1, {h}, {w}, 2], got {tuple(field.shape)}")
    if strength < 0:
        raise ValueError(f"strength must be >= 0, got {strength}")
    line_y, line_x = torch.linspace(-1, 1, h), torch.linspace(-1, 1, w)
    ys, xs = torch.meshgrid(line_y, line_x, indexing="ij")
    identity = torch.stack((xs, ys), dim=-1)[None]
    grid = (identity + strength * field / h).clamp(-1, 1).to(images)
    return F.grid_sample(
        images, grid.expand(n, -1, -1, -1), mode="bilinear", align_corners=True
    ).clamp(0, 1)


def sig(images: torch.Tensor, delta: float = 20 / 255, frequency: float = 6) -> torch.Tensor:
    """SIG: add ``delta * sin(2 pi j frequency / W)`` along the columns ``j``, then clip to
    [0, 1]."""
    check_images(images, channels=3)
    if delta < 0 or frequency <= 0:
        raise ValueError(f"need delta >= 0 and frequency > 0, got {delta}, {frequency}")
    w = images.shape[-1]
    signal = delta * torch.sin(
        2 * math.pi * torch.arange(w, dtype=images.dtype, device=images.device) * frequency / w
    )
    return (images + signal).clamp(0, 1)
