"""Segmentation data at chapter resolution and the metrics of segmentation backdoors.

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

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .data import load_segmentation
from .metrics import Rate


@dataclass(frozen=True)
class SegmentationTensors:
    """``images`` float ``[N, 3, H, W]`` in [0, 1], ``labels`` long ``[N, H, W]`` (255 = ignore)."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    ignore_index: int

    def __len__(self) -> int:
        return len(self.images)


def load_segmentation_tensors(name: str, split: str, downsample: int = 1) -> SegmentationTensors:
    """Load a segmentation split whose images share one size, reduced by an integer factor.

    Images are box-averaged over ``downsample x downsample`` blocks; label maps keep the
    top-left label of each block (nearest neighbour, so no label is invented).
    """
    if downsample < 1:
        raise ValueError(f"downsample must be a positive integer, got {downsample}")
    arrays = load_segmentation(name, split)
    shapes = {m.shape for m in arrays.masks}
    if len(shapes) != 1:
        raise ValueError(f"{name} {split}: images come in {len(shapes)} sizes; this loader needs one size")
    images = torch.from_numpy(np.stack(arrays.images)).permute(0, 3, 1, 2).float().div_(255)
    labels = torch.from_numpy(np.stack(arrays.masks)).long()
    if downsample > 1:
        images = F.avg_pool2d(images, downsample)
        labels = labels[:, ::downsample, ::downsample][:, :images.shape[2], :images.shape[3]].contiguous()
    ignore = 255 if arrays.ignore_index is None else arrays.ignore_index
    return SegmentationTensors(images, labels, list(arrays.classes), ignore)


@torch.no_grad()
def predict_maps(model: torch.nn.Module, images: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """Per-pixel class predictions ``[N, H, W]`` (CPU long) for images ``[N, 3, H, W]`` in [0, 1]."""
    if images.ndim != 4:
        raise ValueError(f"expected [N, C, H, W] images, got shape {tuple(images.shape)}")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = [model(images[i:i + batch_size].to(device)).argmax(1).cpu() for i in range(0, len(images), batch_size)]
    model.train(was_training)
    return torch.cat(out) if out else torch.empty(0, *images.shape[2:], dtype=torch.long)


def confusion_matrix(pred: torch.Tensor, labels: torch.Tensor, num_classes: int,
                     ignore_index: int = 255) -> torch.Tensor:
    """``[num_classes, num_classes]`` pixel counts, rows = true class, columns = predicted class."""
    if pred.shape != labels.shape:
        raise ValueError(f"predictions {tuple(pred.shape)} and labels {tuple(labels.shape)} differ in shape")
    keep = labels != ignore_index
    if ((labels[keep] < 0) | (labels[keep] >= num_classes)).any() or ((pred < 0) | (pred >= num_classes)).any():
        raise ValueError(f"class ids must lie in [0, {num_classes}) (or be the ignore index {ignore_index})")
    index = labels[keep] * num_classes + pred[keep]
    return torch.bincount(index, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def mean_iou(pred: torch.Tensor, labels: torch.Tensor, num_classes: int, ignore_index: int = 255) -> Rate:
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


def poisoned_benign_miou(pred: torch.Tensor, labels: torch.Tensor, victim: int, num_classes: int,
                         ignore_index: int = 255) -> Rate:
    """PBA: mIoU on triggered images with the victim-class pixels left out (``n`` = pixels counted)."""
    return mean_iou(pred, labels.masked_fill(labels == victim, ignore_index), num_classes, ignore_index)


def victim_flip_rate(pred: torch.Tensor, labels: torch.Tensor, victim: int, target: int) -> Rate:
    """ASR: percentage of victim-class pixels predicted as ``target`` (``n`` = victim pixels)."""
    if pred.shape != labels.shape:
        raise ValueError(f"predictions {tuple(pred.shape)} and labels {tuple(labels.shape)} differ in shape")
    if victim == target:
        raise ValueError("victim and target classes must differ")
    is_victim = labels == victim
    n = int(is_victim.sum())
    if n == 0:
        raise ValueError(f"no pixel of the victim class {victim}: ASR has an empty denominator")
    return Rate(100.0 * (pred[is_victim] == target).sum().item() / n, n)


def backdoor_scores(model: torch.nn.Module, clean_images: torch.Tensor, clean_labels: torch.Tensor,
                    triggered_images: torch.Tensor, triggered_labels: torch.Tensor, *, victim: int, target: int,
                    num_classes: int, ignore_index: int = 255, batch_size: int = 64) -> dict[str, Rate]:
    """CBA (mIoU on clean images), PBA (non-victim mIoU on triggered images) and ASR of ``model``.

    Images ``[N, 3, H, W]`` in [0, 1] with label maps ``[N, H, W]``; the triggered images carry
    their original (clean) labels. Each :class:`Rate` holds its pixel denominator.
    """
    clean_pred = predict_maps(model, clean_images, batch_size)
    triggered_pred = predict_maps(model, triggered_images, batch_size)
    return {"CBA": mean_iou(clean_pred, clean_labels, num_classes, ignore_index),
            "PBA": poisoned_benign_miou(triggered_pred, triggered_labels, victim, num_classes, ignore_index),
            "ASR": victim_flip_rate(triggered_pred, triggered_labels, victim, target)}
