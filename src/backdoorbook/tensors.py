"""Image tensors: the one input check, and conversions to and from the data layer's uint8 arrays.

The library's images are float tensors ``[N, C, H, W]`` with values in [0, 1]. Every function
that takes images validates them with :func:`check_images`, which names the layout it
expected, so a channels-last array or a uint8 batch fails loudly instead of being misread.
"""

from __future__ import annotations

import numpy as np
import torch


def check_images(
    images: torch.Tensor,
    *,
    channels: int | None = None,
    size: tuple[int, int] | None = None,
    unit_range: bool = True,
    what: str = "images",
) -> None:
    """Raise ``ValueError`` unless ``images`` is a float ``[N, C, H, W]`` tensor as required.

    Args:
        channels: the required ``C`` (``None``: any). A tensor whose *last* axis has that many
            entries while its second does not is reported as channels-last.
        size: the required ``(H, W)`` (``None``: any).
        unit_range: require values in [0, 1].
        what: the name used in messages.
    """
    expected = f"[N, {channels if channels is not None else 'C'}, " + (
        f"{size[0]}, {size[1]}]" if size is not None else "H, W]"
    )
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise ValueError(
            f"expected {what} as a {expected} tensor, got "
            f"{tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__}"
        )
    if not images.is_floating_point():
        raise ValueError(f"expected float {what} in [0, 1], got dtype {images.dtype}")
    if channels is not None and images.shape[1] != channels:
        layout = (
            " (this looks channels-last, [N, H, W, C]; permute it to [N, C, H, W])"
            if images.shape[-1] == channels
            else ""
        )
        raise ValueError(f"expected {what} {expected}, got shape {tuple(images.shape)}{layout}")
    if size is not None and tuple(images.shape[2:]) != tuple(size):
        raise ValueError(f"expected {what} {expected}, got shape {tuple(images.shape)}")
    if unit_range and images.numel() and (images.min() < 0 or images.max() > 1):
        raise ValueError(
            f"{what} must lie in [0, 1], got range [{images.min():.3g}, {images.max():.3g}]"
        )


def to_image_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 images ``[N, H, W, C]`` (or one ``[H, W, C]``) → float32 ``[N, C, H, W]`` in [0, 1]."""
    if images.dtype != np.uint8:
        raise ValueError(f"expected uint8 images, got dtype {images.dtype}")
    if images.ndim == 3:
        images = images[None]
    if images.ndim != 4:
        raise ValueError(f"expected [N, H, W, C] images, got shape {images.shape}")
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255)


def to_uint8_images(images: torch.Tensor) -> np.ndarray:
    """float ``[N, C, H, W]`` in [0, 1] → uint8 ``[N, H, W, C]`` (rounded, clipped)."""
    check_images(images, unit_range=False)
    return (
        images.detach()
        .clamp(0, 1)
        .mul(255)
        .round()
        .to(torch.uint8)
        .permute(0, 2, 3, 1)
        .cpu()
        .numpy()
    )
