"""Foreground-map metrics: PySODMetrics wired in with BadSAM's conventions, and IoU by hand."""

import py_sod_metrics
import pytest
import torch
import torch.nn.functional as F

from backdoorbook.evaluation.foreground import evaluate_masks, iou

SOD = ("S-measure", "mean E-measure", "weighted F-measure", "MAE")


def block(size, r0, r1, c0, c1):
    gt = torch.zeros(size, size, dtype=torch.bool)
    gt[r0:r1, c0:c1] = True
    return gt


def _maps(n=5, size=40, seed=0):
    """Smooth, non-binary maps in [0, 1] around blob-shaped ground truths of varying size
    (one empty), and one constant map."""
    g = torch.Generator().manual_seed(seed)
    gts = torch.zeros(n, size, size, dtype=torch.bool)
    for i in range(1, n):
        r, c = torch.randint(2, size // 2, (2,), generator=g).tolist()
        gts[i, r : r + 4 + 3 * i, c : c + 6 + 2 * i] = True
    noise = F.avg_pool2d(torch.rand(n, 1, size, size, generator=g), 5, 1, 2)[:, 0]
    preds = (0.6 * gts.double() + 0.5 * noise.double()).clamp(0, 1) * 0.8 + 0.05
    preds[-1] = 0.3
    return preds, gts


def test_the_scores_are_pysodmetrics_per_image_with_beta2_0_3():
    preds, gts = _maps()
    ours = evaluate_masks(preds, gts)
    sm, em, wfm, mae = (
        py_sod_metrics.Smeasure(),
        py_sod_metrics.Emeasure(),
        py_sod_metrics.WeightedFmeasure(beta=0.3),
        py_sod_metrics.MAE(),
    )
    for p, g in zip(preds.numpy(), gts.numpy()):
        for metric in (sm, em, wfm, mae):  # BadSAM's calc_cod: prediction and mask times 255
            metric.step(pred=p * 255, gt=g * 255.0)
    assert ours["n"] == 5
    assert ours["S-measure"] == pytest.approx(sm.get_results()["sm"], abs=1e-12)
    assert ours["mean E-measure"] == pytest.approx(
        em.get_results()["em"]["curve"].mean(), abs=1e-12
    )
    assert ours["weighted F-measure"] == pytest.approx(wfm.get_results()["wfm"], abs=1e-12)
    assert ours["MAE"] == pytest.approx(mae.get_results()["mae"], abs=1e-12)
    default_beta = py_sod_metrics.WeightedFmeasure()  # the package's default, beta = 1
    for p, g in zip(preds.numpy(), gts.numpy()):
        default_beta.step(pred=p * 255, gt=g * 255.0)
    assert abs(ours["weighted F-measure"] - default_beta.get_results()["wfm"]) > 1e-3


def test_maps_are_min_max_normalised_per_image_except_for_iou():
    preds, gts = _maps(seed=1)
    preds, gts = preds[:-1], gts[:-1]  # the constant map is not normalised (below)
    ours = evaluate_masks(preds, gts)
    squeezed = evaluate_masks(0.1 + 0.4 * preds, gts)  # the same maps, affinely squeezed
    for name in SOD:
        assert squeezed[name] == pytest.approx(ours[name], abs=1e-9)
    assert squeezed["IoU"] < ours["IoU"]  # IoU thresholds the map as it is, at 0.5
    # by hand: a map that is 0.25 + 0.5 * gt normalises to gt itself
    gt = block(12, 3, 8, 2, 9)
    exact = evaluate_masks((0.25 + 0.5 * gt.double())[None], gt[None])
    assert exact["MAE"] == pytest.approx(0.0) and exact["S-measure"] == pytest.approx(1.0)
    assert exact["weighted F-measure"] == pytest.approx(1.0) and exact["IoU"] == 1.0
    # a constant map is left as it is: MAE = mean |0.3 - gt|
    flat = evaluate_masks(torch.full((1, 12, 12), 0.3, dtype=torch.float64), gt[None])
    frac = gt.double().mean().item()
    assert flat["MAE"] == pytest.approx(0.7 * frac + 0.3 * (1 - frac))


def test_weighted_f_measure_with_beta2_0_3_by_hand():
    # gt: a 2x2 block at rows/cols 5-6; a false positive at (5, 11), 5 pixels from (5, 6). Every
    # spread error is 0, so the false positive keeps its error 1, weighted by 2 - 0.5^(5/5) = 1.5:
    # R = 1, P = 4 / (4 + 1.5) = 8/11, F = 1.3 R P / (R + 0.3 P) = 10.4 / 13.4 (F1 would be 16/19).
    gt = block(16, 5, 7, 5, 7)
    pred = gt.double().clone()
    pred[5, 11] = 1
    assert evaluate_masks(pred[None], gt[None])["weighted F-measure"] == pytest.approx(10.4 / 13.4)


def test_mean_e_measure_averages_256_thresholds_by_hand():
    # gt [[1,0],[0,0]] (mean 0.25), map [[1,1],[0,0]] (mean 0.5). Alignment per pixel:
    # (fg,fg): 2*0.75*0.5/(0.75²+0.5²) = 12/13 -> (25/13)²/4; (gt bg, map fg): -0.8 -> 0.01;
    # (bg,bg) twice: 0.8 -> 0.81; the sum is divided by H*W - 1 = 3. Thresholds 1..255 see the
    # map itself; threshold 0 turns every pixel on: alignment 0, 4 * 1/4 / 3 = 1/3.
    gt = torch.tensor([[[1, 0], [0, 0]]])
    binary = torch.tensor([[[1.0, 1.0], [0.0, 0.0]]])
    itself = ((25 / 13) ** 2 / 4 + 0.01 + 2 * 0.81) / 3
    assert evaluate_masks(binary, gt)["mean E-measure"] == pytest.approx(
        (255 * itself + 1 / 3) / 256
    )


def test_iou_by_hand_and_validation():
    gt = torch.tensor([[1, 1, 0], [0, 0, 0]])
    pred = torch.tensor([[0.9, 0.2, 0.7], [0.0, 0.0, 0.0]])
    assert iou(pred, gt) == pytest.approx(1 / 3)  # {(0,0), (0,2)} vs {(0,0), (0,1)}
    assert iou(torch.zeros(2, 2), torch.zeros(2, 2)) == 1.0
    empty = evaluate_masks(torch.zeros(1, 8, 8, dtype=torch.float64), torch.zeros(1, 8, 8))
    assert empty["IoU"] == 1.0 and empty["weighted F-measure"] == 0.0  # PySODMetrics: empty gt
    with pytest.raises(ValueError):
        iou(torch.full((2, 2), 1.5), torch.ones(2, 2))
    with pytest.raises(ValueError):
        evaluate_masks(torch.zeros(1, 2, 2), torch.full((1, 2, 2), 2))
    with pytest.raises(ValueError):
        evaluate_masks(torch.zeros(2, 2), torch.zeros(2, 2))  # one map, not a batch
