"""Conversions between the data layer's uint8 arrays and the library's float image tensors."""

from __future__ import annotations

import numpy as np
import torch


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
    if images.ndim != 4:
        raise ValueError(f"expected [N, C, H, W] images, got shape {tuple(images.shape)}")
    return images.detach().clamp(0, 1).mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
