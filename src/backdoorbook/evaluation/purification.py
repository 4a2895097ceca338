"""Fidelity of purified images: PSNR against the clean originals.

The classification side of a purification defense (CA, PA, ASR of the defended inputs) is
:func:`backdoorbook.evaluation.classification.backdoor_metrics`.
"""

from __future__ import annotations

import torch


def psnr(images: torch.Tensor, reference: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """Per-image PSNR (dB, peak 1) of ``images`` against ``reference``, both ``[N, C, H, W]``
    in [0, 1]."""
    if images.shape != reference.shape or images.ndim != 4:
        raise ValueError(
            "need two [N, C, H, W] tensors of one shape, "
            f"got {tuple(images.shape)}, {tuple(reference.shape)}"
        )
    mse = (images.float() - reference.float()).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(1 / (mse + eps))
