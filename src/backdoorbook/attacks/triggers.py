"""Backdoor triggers as pure functions on float images ``[N, C, H, W]`` in [0, 1].

Every function takes RGB images ``[N, 3, H, W]`` (anything else, a channels-last batch
included, is rejected with a message naming the layout), returns a new tensor (inputs are
never modified), keeps the shape, dtype and device of its input, and stays inside [0, 1]. Random
ingredients (the blend pattern, the WaNet warp field) are made by separate seeded constructors, so
one trigger can be applied to the training set and, identically, to the test set.

- :func:`badnets` — a small patch in a corner, a checkerboard (:func:`checkerboard`) or a
  random-colour patch drawn once (:func:`random_patch`) (Gu et al., "BadNets: Identifying
  Vulnerabilities in the Machine Learning Model Supply Chain", arXiv 1708.06733).
- :func:`blended` — alpha-blend a full-image pattern, colour noise (:func:`blend_pattern`) or
  grey noise shared by the three channels (:func:`grey_blend_pattern`) (Chen et al., "Targeted
  Backdoor Attacks on Deep Learning Systems Using Data Poisoning", arXiv 1712.05526).
- :func:`wanet` — a fixed warp of the pixel grid, smooth for a coarse control grid and a
  per-pixel jitter for a fine one (:func:`wanet_field`) (Nguyen & Tran, "WaNet — Imperceptible
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


def random_patch(size: int, channels: int = 3, seed: int = 1234) -> torch.Tensor:
    """A ``[channels, size, size]`` random-colour patch on the 8-bit grid, drawn once from ``seed``.

    Each value is ``(trunc(255 z) mod 256) / 255`` for a standard normal ``z``: the pattern of
    the BadNets victims of ZIP (Shi et al., NeurIPS 2023, arXiv 2303.12175), whose code writes
    ``randn * 255`` into an 8-bit image, so negative and large values wrap around. Drawn from a
    generator seeded with their seed 1234, the values equal theirs.
    """
    if size < 1 or channels < 1:
        raise ValueError(f"patch size and channels must be >= 1, got {size}, {channels}")
    z = torch.randn(channels, size, size, generator=torch.Generator().manual_seed(seed))
    return torch.remainder(torch.trunc(z * 255), 256) / 255


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
    images: torch.Tensor,
    size: int = 3,
    margin: int = 1,
    corner: str = "bottom_right",
    patch: torch.Tensor | None = None,
) -> torch.Tensor:
    """BadNets: a ``size``×``size`` patch ``margin`` pixels from ``corner``.

    ``patch`` ``[C, size, size]`` in [0, 1] is the pattern (default: a :func:`checkerboard`).
    ZIP's victims stamp a 3×3 :func:`random_patch` with margin 3 (rows and columns 26–28 of a
    32 px image).
    """
    check_images(images, channels=3)
    if corner not in CORNERS:
        raise ValueError(f"unknown corner {corner!r}; choose one of {', '.join(CORNERS)}")
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    _, c, h, w = images.shape
    if patch is None:
        patch = checkerboard(size, c)
    elif tuple(patch.shape[1:]) != (size, size):
        raise ValueError(f"patch must be [C, {size}, {size}], got {tuple(patch.shape)}")
    top = h - margin - size if corner.startswith("bottom") else margin
    left = w - margin - size if corner.endswith("right") else margin
    return stamp(images, patch, top, left)


def blend_pattern(shape: tuple[int, int, int] = (3, 32, 32), seed: int = 0) -> torch.Tensor:
    """A fixed uniform-noise pattern ``[C, H, W]`` in [0, 1] for :func:`blended` (seeded).

    The original attack blends a cartoon (Hello Kitty); noise is the other common choice and
    needs no image file.
    """
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"shape must be (C, H, W) with positive sizes, got {shape}")
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed))


def grey_blend_pattern(size: int = 32, seed: int = 1234) -> torch.Tensor:
    """A fixed grey-noise pattern ``[1, size, size]`` for :func:`blended`, which applies it to all
    three channels: integers uniform on 0..254, over 255.

    The pattern of ZIP's Blended victims (arXiv 2303.12175): one 8-bit noise channel broadcast
    to RGB. Drawn from a generator seeded with their seed 1234, the values equal theirs.
    """
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    noise = torch.randint(0, 255, (size, size), generator=torch.Generator().manual_seed(seed))
    return (noise.float() / 255)[None]


def blended(images: torch.Tensor, pattern: torch.Tensor, alpha: float = 0.2) -> torch.Tensor:
    """Blended: ``(1 - alpha) x + alpha pattern`` (ZIP: alpha 0.2).

    ``pattern`` in [0, 1] is ``[C, H, W]``, or ``[1, H, W]`` for one grey pattern applied to
    every channel.
    """
    check_images(images, channels=3)
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    if pattern.ndim != 3 or pattern.shape[0] not in (1, images.shape[1]):
        raise ValueError(f"pattern must be [C, H, W] or [1, H, W], got {tuple(pattern.shape)}")
    if pattern.shape[1:] != images.shape[2:]:
        raise ValueError(
            f"pattern shape {tuple(pattern.shape)} does not match images {tuple(images.shape[1:])}"
        )
    return (1 - alpha) * images + alpha * pattern.to(images)


def wanet_field(size: int = 32, k: int = 4, seed: int = 0) -> torch.Tensor:
    """WaNet's warp field ``[1, size, size, 2]``: a random ``k``×``k`` control grid in [-1, 1],
    normalised by its mean absolute value and resized bicubically to ``size``.

    The WaNet paper uses k = 4, a smooth warp. ZIP's victims (arXiv 2303.12175) use k = 256:
    at 32 px the resize then *down*-samples i.i.d. noise, and the field is nearly independent
    from pixel to pixel, a sub-pixel jitter rather than a smooth warp.
    """
    if k < 2 or size < 2:
        raise ValueError(f"need k >= 2 and size >= 2, got k={k}, size={size}")
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
