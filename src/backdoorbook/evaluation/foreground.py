"""Foreground-map quality: IoU, MAE, S-measure, mean E-measure and weighted F-measure.

These are the camouflaged / salient-object metrics BadSAM (arXiv:2305.03289) reports, as
computed by the MATLAB evaluation code of those benchmarks and its Python port PySODMetrics:

- IoU of the binarised map (threshold 0.5) with the ground truth; 1 when both are empty.
- MAE: mean absolute difference of the map in [0, 1] and the binary ground truth.
- S-measure (Fan et al., "Structure-measure", ICCV 2017, arXiv:1708.00786):
  ``alpha * S_object + (1 - alpha) * S_region`` with ``alpha = 0.5``.
- E-measure (Fan et al., "Enhanced-alignment measure", IJCAI 2018, arXiv:1805.10421): for a
  binary map, the mean of ``(1 + xi)^2 / 4`` with ``xi`` the alignment of the mean-removed map
  and ground truth (the sum divided by ``H * W - 1`` as in the reference code). The *mean*
  E-measure averages it over the 256 thresholds ``k = 0..255`` of the map quantised as
  ``floor(255 * map)``.
- Weighted F-measure (Margolin et al., "How to evaluate foreground maps?", CVPR 2014), with
  ``beta^2 = 1``: errors are spread by a 7x7 Gaussian (sigma 5) from each background pixel's
  nearest foreground pixel and weighted by ``2 - 0.5^(d / 5)`` at background distance ``d``.
  Nearest-pixel ties are broken by raster order. An empty ground truth scores 0.

Every function takes one map ``pred`` ``[H, W]`` with values in [0, 1] and one ground truth
``gt`` ``[H, W]`` (bool or {0, 1}); :func:`evaluate_masks` averages over a batch.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

EPS = 2.2204e-16  # MATLAB's eps, as in the reference implementations


def _inputs(pred, gt) -> tuple[torch.Tensor, torch.Tensor]:
    pred = torch.as_tensor(pred).double()
    gt = torch.as_tensor(gt)
    if pred.ndim != 2 or pred.shape != gt.shape:
        raise ValueError(
            f"need one map and one ground truth of equal shape [H, W], got {tuple(pred.shape)} "
            f"and {tuple(gt.shape)}"
        )
    if pred.numel() < 2:
        raise ValueError("maps need at least two pixels")
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


def mae(pred, gt) -> float:
    """Mean absolute error between the map and the binary ground truth."""
    pred, gt = _inputs(pred, gt)
    return (pred - gt.double()).abs().mean().item()


def _object_score(values: torch.Tensor) -> float:
    mean = values.mean()
    std = values.std(unbiased=True) if values.numel() > 1 else torch.zeros((), dtype=values.dtype)
    return (2 * mean / (mean**2 + 1 + std + EPS)).item()


def _ssim(pred: torch.Tensor, gt: torch.Tensor) -> float:
    n = pred.numel()
    if (
        n < 2
    ):  # a one-pixel (or empty) quadrant: the reference code divides by zero; treat as agreement
        return 1.0
    x, y = pred.mean(), gt.mean()
    sx = ((pred - x) ** 2).sum() / (n - 1)
    sy = ((gt - y) ** 2).sum() / (n - 1)
    sxy = ((pred - x) * (gt - y)).sum() / (n - 1)
    alpha = 4 * x * y * sxy
    beta = (x**2 + y**2) * (sx + sy)
    if alpha != 0:
        return (alpha / (beta + EPS)).item()
    return 1.0 if beta == 0 else 0.0


def s_measure(pred, gt, alpha: float = 0.5) -> float:
    """Structure-measure: object-aware plus region-aware (4 quadrants split at the GT centroid)
    similarity."""
    pred, gt = _inputs(pred, gt)
    g = gt.double()
    fg = g.mean().item()
    if fg == 0:
        return 1 - pred.mean().item()
    if fg == 1:
        return pred.mean().item()
    s_object = fg * _object_score(pred[gt]) + (1 - fg) * _object_score(1 - pred[~gt])
    h, w = gt.shape
    rows, cols = torch.nonzero(gt, as_tuple=True)
    # centroid in 1-based pixel coordinates, rounded half up (MATLAB's round); split after it
    y = int(math.floor(rows.double().mean().item() + 1 + 0.5))
    x = int(math.floor(cols.double().mean().item() + 1 + 0.5))
    s_region = 0.0
    for r0, r1, c0, c1 in ((0, y, 0, x), (0, y, x, w), (y, h, 0, x), (y, h, x, w)):
        weight = (r1 - r0) * (c1 - c0) / (h * w)
        if weight > 0:
            s_region += weight * _ssim(pred[r0:r1, c0:c1], g[r0:r1, c0:c1])
    return max(0.0, alpha * s_object + (1 - alpha) * s_region)


def _enhanced_sum(
    pred_fg: torch.Tensor, gt_fg_pred_fg: torch.Tensor, n_gt: int, n: int
) -> torch.Tensor:
    """Sum of the enhanced-alignment matrix for binary maps given their counts (vectorised over
    maps)."""
    if n_gt == 0:
        return (n - pred_fg).double()
    if n_gt == n:
        return pred_fg.double()
    mp, mg = pred_fg.double() / n, n_gt / n
    counts = (
        gt_fg_pred_fg,
        pred_fg - gt_fg_pred_fg,
        n_gt - gt_fg_pred_fg,
        n - n_gt - pred_fg + gt_fg_pred_fg,
    )
    values = (
        (1 - mp, 1 - mg),
        (1 - mp, -mg),
        (-mp, 1 - mg),
        (-mp, -mg),
    )  # (map, gt) after removing means
    total = torch.zeros_like(mp)
    for count, (a, b) in zip(counts, values):
        align = 2 * a * b / (a**2 + b**2 + EPS)
        total = total + count * (align + 1) ** 2 / 4
    return total


def e_measure(binary, gt) -> float:
    """Enhanced-alignment measure of one binary map."""
    binary, gt = _inputs(binary, gt)
    if not torch.all((binary == 0) | (binary == 1)):
        raise ValueError("e_measure takes a binary map; use mean_e_measure for a map in [0, 1]")
    fg = binary.bool()
    n = gt.numel()
    total = _enhanced_sum(fg.sum(), (fg & gt).sum(), int(gt.sum()), n)
    return (total / (n - 1 + EPS)).item()


def mean_e_measure(pred, gt) -> float:
    """E-measure averaged over the thresholds ``k = 0..255`` of ``floor(255 * pred) >= k``."""
    pred, gt = _inputs(pred, gt)
    levels = (pred * 255).floor().long().clamp(0, 255)
    at_least = lambda values: values.bincount(minlength=256).flip(0).cumsum(0).flip(0)  # noqa: E731  count >= k
    pred_fg = at_least(levels.flatten())
    both_fg = at_least(levels[gt])
    n = gt.numel()
    return (_enhanced_sum(pred_fg, both_fg, int(gt.sum()), n) / (n - 1 + EPS)).mean().item()


def _gaussian_kernel(size: int = 7, sigma: float = 5.0) -> torch.Tensor:
    ax = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    kernel = torch.exp(-(ax[:, None] ** 2 + ax[None, :] ** 2) / (2 * sigma**2))
    return kernel / kernel.sum()


def _nearest_foreground(gt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For every pixel: Euclidean distance to, and flat index of, the nearest foreground pixel."""
    h, w = gt.shape
    padded = F.pad(gt[None, None].double(), (1, 1, 1, 1), value=0.0)
    inner = (
        F.max_pool2d(1 - padded, 3, stride=1)[0, 0] == 0
    )  # foreground with only foreground 8-neighbours
    border = torch.nonzero(gt & ~inner)  # the nearest foreground pixel always lies on the border
    rows = torch.arange(h, dtype=torch.float32)[:, None, None]
    cols = torch.arange(w, dtype=torch.float32)[None, :, None]
    squared = (rows - border[:, 0].float()) ** 2 + (
        cols - border[:, 1].float()
    ) ** 2  # [H, W, B], exact integers
    best, arg = squared.min(-1)
    dist, index = best.double().sqrt(), border[arg, 0] * w + border[arg, 1]
    flat = torch.arange(h * w).view(h, w)
    return torch.where(gt, 0.0, dist), torch.where(gt, flat, index)


def weighted_f_measure(pred, gt, beta2: float = 1.0) -> float:
    """Weighted F-measure (Margolin et al. 2014) of a map in [0, 1]; 0 for an empty ground truth."""
    pred, gt = _inputs(pred, gt)
    if not gt.any():
        return 0.0
    g = gt.double()
    error = (pred - g).abs()
    distance, nearest = _nearest_foreground(gt)
    spread = error.flatten()[
        nearest
    ]  # background pixels take the error of their nearest foreground pixel
    kernel = _gaussian_kernel()
    blurred = F.conv2d(spread[None, None], kernel[None, None], padding=kernel.shape[0] // 2)[0, 0]
    dependent = torch.where(gt & (blurred < error), blurred, error)
    importance = torch.where(gt, 1.0, 2 - torch.exp(math.log(0.5) / 5 * distance))
    weighted = dependent * importance
    tp = g.sum() - weighted[gt].sum()
    fp = weighted[~gt].sum()
    recall = 1 - weighted[gt].mean()
    precision = tp / (tp + fp + EPS)
    return ((1 + beta2) * recall * precision / (EPS + recall + beta2 * precision)).item()


METRICS = {
    "IoU": iou,
    "S-measure": s_measure,
    "mean E-measure": mean_e_measure,
    "weighted F-measure": weighted_f_measure,
    "MAE": mae,
}


def evaluate_masks(preds: torch.Tensor, gts: torch.Tensor) -> dict[str, float]:
    """Mean of every metric in :data:`METRICS` over maps ``[N, H, W]`` in [0, 1] and ground truths
    ``[N, H, W]``.

    Returns the means and ``n``, the number of maps.
    """
    if preds.ndim != 3 or preds.shape != gts.shape or len(preds) == 0:
        raise ValueError(
            f"need [N, H, W] maps and ground truths of equal shape, got {tuple(preds.shape)} "
            f"and {tuple(gts.shape)}"
        )
    scores = {
        name: sum(fn(p, g) for p, g in zip(preds, gts)) / len(preds) for name, fn in METRICS.items()
    }
    return {**scores, "n": len(preds)}
