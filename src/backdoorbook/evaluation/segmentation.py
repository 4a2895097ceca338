"""The metrics of segmentation backdoors, computed from pixel counts.

Metrics (Lan et al., "Influencer Backdoor Attack on Semantic Segmentation", ICLR 2024,
arXiv:2303.12054), all computed from pixel counts so each comes with its denominator:

- mIoU: per-class intersection over union accumulated over the whole image set (one
  confusion matrix), averaged over all ``K`` classes; a class absent from both labels and
  predictions scores 0. Pixels labelled ``ignore_index`` (255) are not counted.
- CBA (clean benign accuracy): mIoU of the model on clean images.
- PBA (poisoned benign accuracy): on *triggered* images, the IoU of every non-victim class over
  the non-victim pixels (victim pixels are treated as ignored), summed and divided by
  ``K - 1``: the victim class is left out of the mean whatever the model predicts.
- ASR: percentage of victim-class pixels of triggered images predicted as the target class.

Each metric is a ratio of pixel counts pooled over images, so the counts can also be kept per
image (:func:`iou_counts`, :func:`victim_flips`) and pooled later (:func:`miou_from_counts`):
a bootstrap over images then resamples whole images, whose pixels are not independent.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..fidelity import Deviation
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


def class_iou(
    pred: torch.Tensor, labels: torch.Tensor, num_classes: int, ignore_index: int = 255
) -> tuple[torch.Tensor, int]:
    """Per-class IoU ``[num_classes]`` (fractions; 0 for a class with an empty union) and the
    number of counted (non-ignored) pixels."""
    cm = confusion_matrix(pred, labels, num_classes, ignore_index).double()
    n = int(cm.sum())
    if n == 0:
        raise ValueError("IoU over zero labelled pixels is undefined")
    inter = cm.diag()
    union = cm.sum(0) + cm.sum(1) - inter
    return torch.where(union > 0, inter / union.clamp(min=1), 0.0), n


def mean_iou(
    pred: torch.Tensor, labels: torch.Tensor, num_classes: int, ignore_index: int = 255
) -> Rate:
    """mIoU in percent over all ``num_classes`` classes, an absent class counting as 0.

    ``n`` is the number of counted (non-ignored) pixels.
    """
    iou, n = class_iou(pred, labels, num_classes, ignore_index)
    return Rate(100.0 * iou.mean().item(), n)


def poisoned_benign_miou(
    pred: torch.Tensor, labels: torch.Tensor, victim: int, num_classes: int, ignore_index: int = 255
) -> Rate:
    """PBA in percent: the IoUs of the ``num_classes - 1`` non-victim classes over the
    non-victim pixels, summed and divided by ``num_classes - 1`` (``n`` = pixels counted)."""
    if not 0 <= victim < num_classes or num_classes < 2:
        raise ValueError(f"victim {victim} must be one of {num_classes} >= 2 classes")
    iou, n = class_iou(
        pred, labels.masked_fill(labels == victim, ignore_index), num_classes, ignore_index
    )
    others = torch.arange(num_classes) != victim
    return Rate(100.0 * iou[others].sum().item() / (num_classes - 1), n)


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


def iou_counts(
    pred: torch.Tensor, labels: torch.Tensor, num_classes: int, ignore_index: int = 255
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image intersections and unions ``[N, num_classes]`` (pixel counts) of every class.

    Summed over images they give the confusion-matrix IoU of :func:`class_iou`: a class's union
    is its labelled pixels plus its predicted pixels minus their intersection, all additive over
    images. Pixels labelled ``ignore_index`` are not counted.
    """
    if pred.shape != labels.shape or pred.ndim != 3:
        raise ValueError(
            f"expected predictions and labels [N, H, W] of one shape, got {tuple(pred.shape)} "
            f"and {tuple(labels.shape)}"
        )
    n = len(labels)
    keep = labels != ignore_index
    true, guess = labels[keep], pred[keep]
    if ((true < 0) | (true >= num_classes) | (guess < 0) | (guess >= num_classes)).any():
        raise ValueError(
            f"class ids must lie in [0, {num_classes}) (or be the ignore index {ignore_index})"
        )
    image = torch.arange(n)[:, None, None].expand_as(labels)[keep]
    cm = torch.bincount(
        (image * num_classes + true) * num_classes + guess, minlength=n * num_classes**2
    ).reshape(n, num_classes, num_classes)
    inter = cm.diagonal(dim1=1, dim2=2)
    return inter, cm.sum(1) + cm.sum(2) - inter


def miou_from_counts(
    intersections: torch.Tensor, unions: torch.Tensor, classes: Sequence[int] | None = None
) -> float:
    """mIoU in percent from per-image counts ``[N, K]`` (tensors or arrays) pooled over the
    images: the mean IoU over ``classes`` (default: all ``K``), a class with an empty union
    counting as 0.

    ``classes`` = every class but the victim, with counts of label maps whose victim pixels are
    ignored, gives PBA (the sum of the ``K - 1`` IoUs divided by ``K - 1``).
    """
    inter = torch.as_tensor(intersections).sum(0).double()
    union = torch.as_tensor(unions).sum(0).double()
    iou = torch.where(union > 0, inter / union.clamp(min=1), 0.0)
    if classes is not None:
        iou = iou[list(classes)]
    return 100.0 * iou.mean().item()


def victim_flips(
    pred: torch.Tensor, labels: torch.Tensor, victim: int, target: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image ``[N]``: victim pixels predicted as ``target``, and victim pixels (the ASR's
    numerator and denominator, image by image)."""
    if pred.shape != labels.shape or pred.ndim != 3:
        raise ValueError(
            f"expected predictions and labels [N, H, W] of one shape, got {tuple(pred.shape)} "
            f"and {tuple(labels.shape)}"
        )
    if victim == target:
        raise ValueError("victim and target classes must differ")
    is_victim = labels == victim
    return (is_victim & (pred == target)).sum((1, 2)), is_victim.sum((1, 2))


def sum_by_image(values: torch.Tensor, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of ``values`` ``[M, ...]`` summed per source image ``indices`` ``[M]``: returns the
    sorted distinct indices ``[U]`` and the sums ``[U, ...]`` (several trigger placements of one
    image pool into one row)."""
    if len(values) != len(indices):
        raise ValueError(f"{len(values)} rows but {len(indices)} indices")
    images, row = torch.unique(indices, return_inverse=True)
    sums = torch.zeros(len(images), *values.shape[1:], dtype=values.dtype)
    return images, sums.index_add_(0, row, values)


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

    The triggered images are the caller's choice; the chapter passes only images that carry
    the trigger (declared in :data:`DEVIATIONS`).

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


#: Where this module's scoring departs from the authors' code (Maxproto/IBA@c32bc92).
DEVIATIONS = (
    Deviation(
        item="Inference for the scores",
        authors="every val image resized to (8*(h//8)+9)x(8*(w//8)+9), i.e. 1033x521, and its "
        "softmax averaged with that of its horizontal flip; labels resized with nearest "
        "(Maxproto/IBA@c32bc92 tool/test.py:139-163, 199-215, 243-246)",
        ours="one forward pass per image at the working resolution, no flip averaging",
        why="the resize fits PSPNet's output stride, which our network does not have; flip "
        "averaging is a test-time ensemble, not part of the attack, and every model here is "
        "scored alike",
        claims=("victim-flips-benign-intact", "low-rate-order", "distance-decay"),
        where=("backdoorbook.evaluation.segmentation.predict_maps",),
    ),
    Deviation(
        item="Images scored for PBA and ASR",
        authors="all val images: those with a victim pixel triggered where a centre exists "
        "(scored untriggered otherwise), the others clean; ASR pools every victim pixel "
        "(Maxproto/IBA@c32bc92 tool/test.py:70-71, 264-300; util/dataset.py:69-72)",
        ours="only the triggered images: those with at least min_victim_pixels victim pixels "
        "and a valid trigger position, from the profile's test_splits (CamVid test and val "
        "under ci)",
        why="an image without a trigger cannot show the backdoor; pooling its pixels in would "
        "mix the clean error rate into ASR and PBA",
        claims=("victim-flips-benign-intact", "low-rate-order", "distance-decay"),
        where=("backdoorbook.evaluation.segmentation.segmentation_backdoor_scores",),
    ),
)
