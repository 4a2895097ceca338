"""Foreground-map metrics against values worked out by hand (derivations in the comments)."""

import math

import pytest
import torch

from backdoorbook.evaluation.foreground import (
    e_measure,
    evaluate_masks,
    iou,
    mae,
    mean_e_measure,
    s_measure,
    weighted_f_measure,
)


def block(size, r0, r1, c0, c1):
    gt = torch.zeros(size, size, dtype=torch.bool)
    gt[r0:r1, c0:c1] = True
    return gt


def test_iou_and_mae_by_hand():
    gt = torch.tensor([[1, 1, 0], [0, 0, 0]])
    pred = torch.tensor([[0.9, 0.2, 0.7], [0.0, 0.0, 0.0]])
    assert iou(pred, gt) == pytest.approx(
        1 / 3
    )  # binarised {(0,0), (0,2)} vs {(0,0), (0,1)}: 1 / 3
    assert mae(pred, gt) == pytest.approx((0.1 + 0.8 + 0.7) / 6)
    assert iou(torch.zeros(2, 2), torch.zeros(2, 2)) == 1.0


def test_s_measure_scaled_prediction():
    # gt: 3x3 block in a 5x5 image, pred = 0.5 * gt. Object part: foreground values all 0.5 ->
    # 2*0.5/(0.25+1) = 0.8; background (1 - pred) all 1 -> 1; weighted by gt area 9/25: 0.36*0.8 +
    # 0.64*1 = 0.928. Region part: centroid (3, 3) 1-based, every quadrant holds both classes, pred
    # = gt / 2 gives ssim = 4 xy sxy / ((x²+y²)(sx+sy)) = 1 / (1.25 * 1.25) = 0.64. S = (0.928 +
    # 0.64) / 2 = 0.784.
    gt = block(5, 1, 4, 1, 4)
    assert s_measure(0.5 * gt.double(), gt) == pytest.approx(0.784)


def test_s_measure_one_false_positive():
    # gt as above, pred = gt plus a false positive at (0, 0). Object: foreground perfect -> 1;
    # background (1 - pred) over 16 pixels = fifteen 1s and one 0: mean 15/16, std (ddof 1) =
    # sqrt(0.9375 / 15) = 0.25 -> 2 * 0.9375 / (0.9375² + 1 + 0.25) = 0.8807339; object = 0.36 +
    # 0.64 * 0.8807339 = 0.9236697. Region: top-left quadrant (3x3) has 5 predicted and 4 true ones,
    # 4 shared: x = 5/9, y = 4/9, sx = sy = 20/72, sxy = 2/9 -> ssim = (160/729) / (205/729) =
    # 160/205; other quadrants exact (ssim 1); region = 0.36 * 160/205 + 0.64. S = mean of both.
    gt = block(5, 1, 4, 1, 4)
    pred = gt.double().clone()
    pred[0, 0] = 1
    expected = 0.5 * (0.36 + 0.64 * 1.875 / (0.9375**2 + 1.25)) + 0.5 * (0.36 * 160 / 205 + 0.64)
    assert s_measure(pred, gt) == pytest.approx(expected)
    assert s_measure(gt.double(), gt) == pytest.approx(1.0)
    assert s_measure(torch.full((4, 4), 0.25), torch.zeros(4, 4)) == pytest.approx(
        0.75
    )  # empty gt: 1 - mean


def test_e_measure_by_hand():
    # gt [[1,0],[0,0]] (mean 0.25), map [[1,1],[0,0]] (mean 0.5). Alignment per pixel:
    # (fg,fg): 2*0.75*0.5/(0.75²+0.5²) = 12/13 -> (25/13)²/4; (gt bg, map fg): -0.8 -> 0.01;
    # (bg,bg) twice: 0.8 -> 0.81. Sum / (4 - 1).
    gt = torch.tensor([[1, 0], [0, 0]])
    binary = torch.tensor([[1.0, 1.0], [0.0, 0.0]])
    expected = ((25 / 13) ** 2 / 4 + 0.01 + 2 * 0.81) / 3
    assert e_measure(binary, gt) == pytest.approx(expected)
    # a binary map passes 255 of the 256 thresholds as itself; threshold 0 turns every pixel on
    assert mean_e_measure(binary, gt) == pytest.approx(
        (255 * expected + e_measure(torch.ones(2, 2), gt)) / 256
    )
    assert e_measure(torch.zeros(3, 3), torch.zeros(3, 3)) == pytest.approx(
        9 / 8
    )  # empty gt: sum(1 - map)/(n-1)


def test_weighted_f_measure_half_confident_foreground():
    # pred = 0.5 on the 4x4 gt block, 0 elsewhere (block >= 3 pixels from the border). The spread
    # error is 0.5 everywhere, so the Gaussian leaves it at 0.5: R = 1 - 0.5, TP_w = 16 - 8, FP_w =
    # 0, P = 1 -> F = 2/3.
    gt = block(16, 6, 10, 6, 10)
    assert weighted_f_measure(0.5 * gt.double(), gt) == pytest.approx(2 / 3)
    assert weighted_f_measure(gt.double(), gt) == pytest.approx(1.0)
    assert weighted_f_measure(torch.rand(8, 8), torch.zeros(8, 8)) == 0.0


def test_weighted_f_measure_false_positive_at_distance_five():
    # gt 2x2 block at rows/cols 5-6; a false positive at (5, 11), 5 pixels from (5, 6). Its spread
    # error is that of its nearest foreground pixel (0), so it keeps its own error 1 weighted by 2 -
    # 0.5^(5/5) = 1.5: R = 1, P = 4 / (4 + 1.5), F = 2RP / (R + P) = 16/19.
    gt = block(16, 5, 7, 5, 7)
    pred = gt.double().clone()
    pred[5, 11] = 1
    assert weighted_f_measure(pred, gt) == pytest.approx(16 / 19)


def test_weighted_f_measure_missed_interior_pixel():
    # an interior pixel of a 4x4 block predicted 0: its error 1 is replaced by the blurred error,
    # the centre weight of the 7x7 Gaussian (sigma 5): 1 / (sum_{i=-3..3} exp(-i²/50))². R = 1 -
    # c/16, P = 1.
    gt = block(16, 6, 10, 6, 10)
    pred = gt.double().clone()
    pred[7, 7] = 0
    centre = 1 / sum(math.exp(-i * i / 50) for i in range(-3, 4)) ** 2
    recall = 1 - centre / 16
    assert weighted_f_measure(pred, gt) == pytest.approx(2 * recall / (1 + recall))


def test_evaluate_masks_means_and_validation():
    gt = block(8, 2, 6, 2, 6)
    preds = torch.stack([gt.double(), torch.zeros(8, 8, dtype=torch.float64)])
    scores = evaluate_masks(preds, torch.stack([gt, gt]))
    assert scores["n"] == 2
    assert scores["IoU"] == pytest.approx(0.5)
    assert scores["MAE"] == pytest.approx(16 / 64 / 2)
    with pytest.raises(ValueError):
        iou(torch.full((2, 2), 1.5), torch.ones(2, 2))
    with pytest.raises(ValueError):
        mae(torch.zeros(2, 2), torch.full((2, 2), 2))
    with pytest.raises(ValueError):
        e_measure(torch.full((2, 2), 0.5), torch.ones(2, 2))
