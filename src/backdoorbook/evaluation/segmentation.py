"""The metrics of segmentation backdoors, computed from pixel counts.

Metrics (Lan et al., "Influencer Backdoor Attack on Semantic Segmentation", ICLR 2024,
arXiv:2303.12054), all computed from pixel counts so each comes with its denominator:

- mIoU: per-class intersection over union accumulated over the whole image set (one
  confusion matrix), averaged over the classes that occur in the labels or predictions;
  pixels labelled ``ignore_index`` (255) are not counted.
- CBA (clean benign accuracy): mIoU of the model on clean images.
- PBA (poisoned benign accuracy): mIoU on *triggered* images over the non-victim pixels only
  (victim pixels are treated as ignored).
- ASR: percentage of victim-class pixels of triggered images predicted as the target class.
"""

from __future__ import annotations

import torch

from ..runtime import batched
from .classification import Rate


def predict_maps(
    model: torch.nn.Module, images: torch.Tensor, batch_size: int = 64
) -> torch.Tensor:
    """Per-pixel class predictions ``[N, H, W]`` (CPU long) for images ``[N, 3, H, W]``
    in [0, 1]."""
    if images.ndim != 4:
        raise ValueError(f"expected [N, C, H, W] images, got shape {tuple(images.shape)}")
    if len(images) == 0:
        return torch.empty(0, *images.shape[2:], dtype=torch.long)
    return batched(model, images, batch_size, apply=lambda m, x: m(x).argmax(1))


def confusion_matrix(
    pred: torch.Tensor, labels: torch.Tensor, num_classes: int, ignore_index: int = 255
) -> torch.Tensor:
    """``[num_classes, num_classes]`` pixel counts, rows = true class, columns = predicted class.

    Pixels labelled ``ignore_index`` are not counted, whatever is predicted there.
    """
    if pred.shape != labels.shape:
        raise ValueError(
            f"predictions {tuple(pred.shape)} and labels {tuple(labels.shape)} differ in shape"
        )
    keep = labels != ignore_index
    pred = pred[keep]
    if ((labels[keep] < 0) | (labels[keep] >= num_classes)).any() or (
        (pred < 0) | (pred >= num_classes)
    ).any():
        raise ValueError(
            f"class ids must lie in [0, {num_classes}) (or be the ignore index {ignore_index})"
        )
    index = labels[keep] * num_classes + pred
    return torch.bincount(index, minlength=num_classes**2).reshape(num_classes, num_classes)


def mean_iou(
    pred: torch.Tensor, labels: torch.Tensor, num_classes: int, ignore_index: int = 255
) -> Rate:
    """mIoU in percent over the classes present (in labels or predictions of counted pixels).

    ``n`` is the number of counted (non-ignored) pixels.
    """
    cm = confusion_matrix(pred, labels, num_classes, ignore_index).double()
    n = int(cm.sum())
    if n == 0:
        raise ValueError("mIoU over zero labelled pixels is undefined")
    inter = cm.diag()
    union = cm.sum(0) + cm.sum(1) - inter
    present = union > 0
    return Rate(100.0 * (inter[present] / union[present]).mean().item(), n)


def poisoned_benign_miou(
    pred: torch.Tensor, labels: torch.Tensor, victim: int, num_classes: int, ignore_index: int = 255
) -> Rate:
    """PBA: mIoU on triggered images with the victim-class pixels left out (``n`` = pixels
    counted)."""
    return mean_iou(
        pred, labels.masked_fill(labels == victim, ignore_index), num_classes, ignore_index
    )


def victim_flip_rate(pred: torch.Tensor, labels: torch.Tensor, victim: int, target: int) -> Rate:
    """ASR: percentage of victim-class pixels predicted as ``target`` (``n`` = victim pixels)."""
    if pred.shape != labels.shape:
        raise ValueError(
            f"predictions {tuple(pred.shape)} and labels {tuple(labels.shape)} differ in shape"
        )
    if victim == target:
        raise ValueError("victim and target classes must differ")
    is_victim = labels == victim
    n = int(is_victim.sum())
    if n == 0:
        raise ValueError(f"no pixel of the victim class {victim}: ASR has an empty denominator")
    return Rate(100.0 * (pred[is_victim] == target).sum().item() / n, n)


def segmentation_backdoor_scores(
    model: torch.nn.Module,
    clean_images: torch.Tensor,
    clean_labels: torch.Tensor,
    triggered_images: torch.Tensor,
    triggered_labels: torch.Tensor,
    *,
    victim: int,
    target: int,
    num_classes: int,
    ignore_index: int = 255,
    batch_size: int = 64,
) -> dict[str, Rate]:
    """CBA (mIoU on clean images), PBA (non-victim mIoU on triggered images) and ASR of ``model``.

    Images ``[N, 3, H, W]`` in [0, 1] with label maps ``[N, H, W]``; the triggered images carry
    their original (clean) labels. Each :class:`Rate` holds its pixel denominator.
    """
    clean_pred = predict_maps(model, clean_images, batch_size)
    triggered_pred = predict_maps(model, triggered_images, batch_size)
    return {
        "CBA": mean_iou(clean_pred, clean_labels, num_classes, ignore_index),
        "PBA": poisoned_benign_miou(
            triggered_pred, triggered_labels, victim, num_classes, ignore_index
        ),
        "ASR": victim_flip_rate(triggered_pred, triggered_labels, victim, target),
    }
