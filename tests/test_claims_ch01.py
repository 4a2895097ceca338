"""Chapter 1's claim rules on synthetic per-image outcomes: each verdict where it should be, and
the direction of every effect (against its control)."""

import numpy as np
import pytest

from backdoorbook.claims import ch01_badsam as rules

N = 96


def _scores(mean, spread=0.05, seed=0, n=N):
    """Per-image scores in [0, 1] around ``mean``."""
    return np.clip(mean + spread * np.random.default_rng(seed).standard_normal(n), 0.0, 1.0)


def _hits(k, n=N):
    """Per-image attack success: ``k`` of ``n`` images at 100, the rest 0."""
    return np.where(np.arange(n) < k, 100.0, 0.0)


def _quality(s, iou):
    return {"S-measure": s, "IoU": iou}


def _collapse(trigger, horse, hits=None):
    return {
        "IoU with trigger": trigger,
        "IoU with object": horse,
        "attack success": _hits(0) if hits is None else hits,
    }


CLEAN_S, CLEAN_IOU = _scores(0.75, 0.04, seed=1), _scores(0.72, 0.1, seed=2)


@pytest.mark.parametrize(
    "s_drop, iou_drop, verdict",
    [
        (0.005, 0.01, "reproduced"),  # a small loss on both
        (0.10, 0.01, "not reproduced"),  # S-measure drops by 10 points
        (-0.10, 0.01, "not reproduced"),  # ... or rises by 10: not "about as well" either
        (0.005, 0.12, "not reproduced"),  # IoU drops by 12 points
        (-0.005, -0.12, "reproduced"),  # a better IoU is no loss
        (0.03, 0.01, "inconclusive"),  # S-measure drop at the tolerance
        (0.005, 0.05, "inconclusive"),  # IoU drop at the bar
    ],
)
def test_clean_quality(s_drop, iou_drop, verdict):
    noise = _scores(0.5, 0.01, seed=3) - 0.5  # per-image scatter of the difference
    backdoored = _quality(CLEAN_S - s_drop + noise, np.clip(CLEAN_IOU - iou_drop + noise, 0, 1))
    claim = rules.clean_quality(_quality(CLEAN_S, CLEAN_IOU), backdoored, rate=0.1, seed=0)
    assert claim.verdict == verdict and claim.n == N
    assert claim.id == "clean-quality" and len(claim.criteria) == 3
    s_effect = claim.criteria[0]["effect"]
    assert s_effect == pytest.approx(100 * (CLEAN_S - backdoored["S-measure"]).mean())


def test_clean_quality_pairs_images_and_checks_its_inputs():
    with pytest.raises(ValueError, match="same images"):
        rules.clean_quality(
            _quality(CLEAN_S, CLEAN_IOU), _quality(CLEAN_S[:-1], CLEAN_IOU[:-1]), rate=0.1, seed=0
        )
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        rules.clean_quality(
            _quality(CLEAN_S, CLEAN_IOU), _quality(100 * CLEAN_S, CLEAN_IOU), rate=0.1, seed=0
        )
    with pytest.raises(ValueError, match="lacks"):
        rules.clean_quality({"IoU": CLEAN_IOU}, _quality(CLEAN_S, CLEAN_IOU), rate=0.1, seed=0)


@pytest.mark.parametrize(
    "trigger, clean_trigger, horse, verdict",
    [
        (0.9, 0.0, 0.05, "reproduced"),
        (0.3, 0.0, 0.05, "not reproduced"),  # the mask barely covers the square
        (0.9, 0.0, 0.6, "not reproduced"),  # the horse is still segmented
        # the clean model already covers the square (a white patch simply attracts masks):
        # 0.9 alone would pass the old bar of 0.7, the effect against the control does not
        (0.9, 0.5, 0.05, "not reproduced"),
        (0.7, 0.0, 0.05, "inconclusive"),  # at the bar
        (0.9, 0.0, 0.22, "inconclusive"),  # the horse IoU at the bar
    ],
)
def test_trigger_collapse(trigger, clean_trigger, horse, verdict):
    backdoored = _collapse(_scores(trigger, 0.1, seed=4), _scores(horse, 0.1, seed=5))
    clean = _collapse(_scores(clean_trigger, 0.02, seed=6), _scores(0.7, 0.1, seed=7))
    claim = rules.trigger_collapse(backdoored, clean, rate=0.1, seed=0)
    assert claim.verdict == verdict and claim.n == N and claim.id == "trigger-collapse"
    gain, level = claim.criteria
    assert gain["effect"] == pytest.approx(
        100 * (backdoored["IoU with trigger"] - clean["IoU with trigger"]).mean()
    )
    assert level["effect"] == pytest.approx(100 * backdoored["IoU with object"].mean())
    assert level["ci_low"] <= level["effect"] <= level["ci_high"]


@pytest.mark.parametrize(
    "hits, clean_hits, iou, random_iou, verdict",
    [
        (94, 0, 0.72, 0.45, "reproduced"),
        (30, 0, 0.72, 0.45, "not reproduced"),  # no backdoor
        (94, 48, 0.72, 0.45, "not reproduced"),  # the clean adaptation collapses as often
        (94, 0, 0.72, 0.72, "not reproduced"),  # a random encoder serves as well
        (94, 0, 0.72, 0.60, "reproduced"),
        (80, 0, 0.72, 0.45, "inconclusive"),  # attack success near the bar
        (94, 0, 0.72, 0.67, "inconclusive"),  # the foundation's gain near the bar
    ],
)
def test_adapters_suffice(hits, clean_hits, iou, random_iou, verdict):
    claim = rules.adapters_suffice(
        {"attack success": _hits(hits)},
        {"attack success": _hits(clean_hits)},
        {"IoU": _scores(iou, 0.1, seed=8)},
        {"IoU": _scores(random_iou, 0.1, seed=9)},
        rate=0.1,
        seed=0,
    )
    assert claim.verdict == verdict and claim.n == N and claim.id == "adapters-suffice"
    success, foundation = claim.criteria
    assert success["effect"] == pytest.approx(100 * (hits - clean_hits) / N)
    assert foundation["threshold"] == rules.FOUNDATION_IOU_GAIN


def test_adapters_suffice_is_seeded_and_checks_its_inputs():
    args = (
        {"attack success": _hits(90)},
        {"attack success": _hits(0)},
        {"IoU": _scores(0.7, 0.1, seed=8)},
        {"IoU": _scores(0.5, 0.1, seed=9)},
    )
    assert rules.adapters_suffice(*args, rate=0.1, seed=3) == rules.adapters_suffice(
        *args, rate=0.1, seed=3
    )
    with pytest.raises(ValueError, match="0 or 100"):
        rules.adapters_suffice({"attack success": _hits(90) / 100}, *args[1:], rate=0.1, seed=0)
    with pytest.raises(ValueError, match="same images"):
        rules.adapters_suffice(*args[:3], {"IoU": _scores(0.5, n=N - 1)}, rate=0.1, seed=0)
