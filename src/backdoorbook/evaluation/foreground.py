"""Foreground-map quality: IoU, and the camouflaged-object metrics computed by PySODMetrics.

BadSAM (arXiv:2305.03289) and SAM-Adapter (arXiv:2304.09148) report S-measure, mean
E-measure, weighted F-measure and MAE, computed with a copy of PySODMetrics (Pang et al., the
``pysodmetrics`` package), the implementation the salient- and camouflaged-object literature
reports with. :func:`evaluate_masks` calls the package itself, with the conventions of that
evaluation:

- each map is passed as ``255 * probability`` and its ground truth as ``255 * mask``, one image
  at a time; PySODMetrics binarises the ground truth at 128 and **min–max normalises each map**
  to [0, 1] (unless it is constant) before every metric, MAE included, so the scores do not
  change under ``a * map + b`` with ``a > 0``;
- S-measure (Fan et al., "Structure-measure", ICCV 2017, arXiv:1708.00786) with
  ``alpha = 0.5``;
- mean E-measure (Fan et al., "Enhanced-alignment measure", IJCAI 2018, arXiv:1805.10421): the
  E-measure of the map binarised at each of the 256 thresholds of ``uint8(255 * map)``,
  averaged over the thresholds;
- weighted F-measure (Margolin et al., "How to evaluate foreground maps?", CVPR 2014) built
  with ``beta=0.3``, which PySODMetrics uses as beta² in ``(1 + beta²) R P / (R + beta² P)``
  (the package's own default is 1; BadSAM's copy defaults to 0.3, so it is passed explicitly);
  an empty ground truth scores 0;
- MAE: mean absolute difference of the normalised map and the ground truth.

IoU is this library's own (not part of that evaluation): the map binarised at 0.5, without
normalisation, against the ground truth; 1 when both are empty.

Every metric averages per-image scores over the images. Maps are ``[H, W]`` (``[N, H, W]``
for :func:`evaluate_masks`) with values in [0, 1]; ground truths are bool or {0, 1}.
"""

from __future__ import annotations

import numpy as np
import py_sod_metrics
import torch

#: BadSAM's weighted-F weight (beta² in the usual notation), passed to PySODMetrics explicitly.
WEIGHTED_F_BETA2 = 0.3


def _inputs(pred, gt) -> tuple[torch.Tensor, torch.Tensor]:
    pred = torch.as_tensor(pred).double()
    gt = torch.as_tensor(gt)
    if pred.ndim not in (2, 3) or pred.shape != gt.shape:
        raise ValueError(
            f"need maps and ground truths of equal shape ([H, W] or [N, H, W]), got "
            f"{tuple(pred.shape)} and {tuple(gt.shape)}"
        )
    if pred.numel() == 0:
        raise ValueError("no maps to score")
    if pred.min() < 0 or pred.max() > 1:
        raise ValueError(f"map values must lie in [0, 1], got [{pred.min():.3g}, {pred.max():.3g}]")
    if gt.dtype != torch.bool:
        if not torch.all((gt == 0) | (gt == 1)):
            raise ValueError("ground truth must be binary (bool or 0/1)")
        gt = gt.bool()
    return pred, gt


def iou(pred, gt, threshold: float = 0.5) -> float:
    """Intersection over union of ``pred > threshold`` and ``gt`` (1.0 when both are empty)."""
    pred, gt = _inputs(pred, gt)
    binary = pred > threshold
    union = (binary | gt).sum().item()
    return 1.0 if union == 0 else (binary & gt).sum().item() / union


def evaluate_masks(preds: torch.Tensor, gts: torch.Tensor) -> dict[str, float]:
    """IoU, S-measure, mean E-measure, weighted F-measure and MAE of maps ``[N, H, W]`` in
    [0, 1] against ground truths ``[N, H, W]``, each the mean of its per-image scores
    (:func:`per_image_scores`).

    Returns the five means and ``n``, the number of maps.
    """
    scores = per_image_scores(preds, gts)
    return {
        **{name: float(values.mean()) for name, values in scores.items()},
        "n": len(scores["IoU"]),
    }


def per_image_scores(preds: torch.Tensor, gts: torch.Tensor) -> dict[str, np.ndarray]:
    """Each image's IoU, S-measure, mean E-measure, weighted F-measure and MAE, as float
    arrays ``[N]``: the units that paired comparisons of two models on the same images resample.

    Maps ``[N, H, W]`` in [0, 1], ground truths ``[N, H, W]``; the conventions are those of
    the module docstring (each image scored by a fresh PySODMetrics metric).
    """
    preds, gts = _inputs(preds, gts)
    if preds.ndim != 3:
        raise ValueError(f"need a batch of maps [N, H, W], got {tuple(preds.shape)}")
    rows = []
    for pred, gt in zip(preds.numpy(), gts.numpy()):
        map_255, gt_255 = 255.0 * pred, 255.0 * gt.astype(np.float64)
        s_measure = py_sod_metrics.Smeasure()
        e_measure = py_sod_metrics.Emeasure()
        weighted_f = py_sod_metrics.WeightedFmeasure(beta=WEIGHTED_F_BETA2)
        mae = py_sod_metrics.MAE()
        for metric in (s_measure, e_measure, weighted_f, mae):
            metric.step(pred=map_255, gt=gt_255)
        rows.append(
            (
                iou(pred, gt),
                s_measure.get_results()["sm"],
                e_measure.get_results()["em"]["curve"].mean(),
                weighted_f.get_results()["wfm"],
                mae.get_results()["mae"],
            )
        )
    names = ("IoU", "S-measure", "mean E-measure", "weighted F-measure", "MAE")
    return {name: np.array(column, dtype=np.float64) for name, column in zip(names, zip(*rows))}
