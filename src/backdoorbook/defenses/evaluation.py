"""Scoring an input-purification defense: CA, PA, ASR and fidelity (PSNR).

Definitions (ZIP, arXiv 2303.12175, and the book's introduction): CA is the accuracy on
(defended) clean inputs; PA the accuracy of defended poisoned inputs with respect to their
true labels; ASR the share of defended poisoned inputs classified as the target, over inputs
whose true label is not the target.
"""

from __future__ import annotations

import torch
from torch import nn

from ..metrics import Rate, accuracy, attack_success_rate, predict


def psnr(images: torch.Tensor, reference: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """Per-image PSNR (dB, peak 1) of ``images`` against ``reference``, both ``[N, C, H, W]`` in [0, 1]."""
    if images.shape != reference.shape or images.ndim != 4:
        raise ValueError(f"need two [N, C, H, W] tensors of one shape, got {tuple(images.shape)}, {tuple(reference.shape)}")
    mse = (images.float() - reference.float()).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(1 / (mse + eps))


def backdoor_metrics(model: nn.Module, clean: torch.Tensor, poisoned: torch.Tensor, labels: torch.Tensor,
                     target: int, batch_size: int = 256) -> dict[str, Rate]:
    """``{"CA", "PA", "ASR"}`` of ``model`` on already-defended ``clean`` and ``poisoned`` images.

    ``clean`` and ``poisoned`` are ``[N, C, H, W]`` in [0, 1], the same N images with and without
    the trigger (then defended); ``labels`` ``[N]`` their true classes.
    """
    if clean.shape != poisoned.shape or len(labels) != len(clean):
        raise ValueError("clean, poisoned and labels must describe the same N images")
    clean_pred = predict(model, clean, batch_size, progress=False)
    poisoned_pred = predict(model, poisoned, batch_size, progress=False)
    keep = labels != target
    return {"CA": accuracy(clean_pred, labels),
            "PA": accuracy(poisoned_pred[keep], labels[keep]),
            "ASR": attack_success_rate(poisoned_pred, labels, target)}
