"""Chapter 3's claim rules on synthetic per-image counts: each rule gives each of the three
verdicts where it should, and its effects point the right way."""

import numpy as np
import pytest
import torch

from backdoorbook.claims import ch03_iba
from backdoorbook.claims.ch03_iba import (
    ModelCounts,
    distance_decay,
    low_rate_order,
    miou_difference,
    victim_flips_benign_intact,
)
from backdoorbook.evaluation.segmentation import iou_counts, mean_iou, miou_from_counts

K, VICTIM = 4, 3


def _victims(n, seed=0):
    return np.random.default_rng(seed).integers(50, 400, n)


def _flips(victims, rate, spread=0.05, seed=0):
    """Per image: victim pixels turned into the target, around ``rate`` (a fraction) with an
    image-to-image spread."""
    rng = np.random.default_rng(seed)
    p = np.clip(rate + spread * rng.standard_normal(len(victims)), 0, 1)
    return rng.binomial(victims, p)


def _iou(n, quality, seed=0):
    """Per-image (intersections, unions) [n, K]: the intersection is ``quality`` of the union."""
    rng = np.random.default_rng(seed)
    unions = rng.integers(100, 1000, (n, K))
    inter = rng.binomial(unions, np.clip(quality + 0.02 * rng.standard_normal((n, K)), 0, 1))
    return inter, unions


def _model(victims, asr, untriggered, quality=0.6, spread=0.05, seed=0, clean_n=60):
    return ModelCounts(
        flips=_flips(victims, asr, spread, seed),
        flips_untriggered=_flips(victims, untriggered, spread, seed + 1),
        victims=victims,
        clean_iou=_iou(clean_n, quality, seed=100),  # clean images: shared scenes
        triggered_iou=_iou(len(victims), quality, seed=200),
    )


def _claim1(attacked, clean):
    return victim_flips_benign_intact(attacked, clean, victim=VICTIM, rate=0.2, seed=0)


def test_claim1_is_reproduced_by_a_trigger_conditioned_backdoor_that_keeps_benign_accuracy():
    v = _victims(150)
    clean = _model(v, 0.10, 0.10, seed=1)
    attacked = {m: _model(v, 0.90, 0.12, seed=10 + i) for i, m in enumerate(ch03_iba.ORDER)}
    claim = _claim1(attacked, clean)
    assert claim.verdict == "reproduced" and claim.note == ""
    assert len(claim.criteria) == 12 and claim.n in (150, 60)
    own = claim.criteria[0]
    assert own["effect"] == pytest.approx(attacked["prl"].asr - attacked["prl"].untriggered_rate)
    assert own["ci_low"] < own["effect"] < own["ci_high"] and own["ci_low"] >= 50


def test_claim1_is_not_reproduced_by_a_model_that_only_confuses_the_victim_with_the_target():
    v = _victims(150)
    clean = _model(v, 0.10, 0.10, seed=1)
    # car -> road at 65 % with or without the trigger: the old rule (ASR - clean ASR >= 50)
    # passes, the untriggered control does not
    attacked = {m: _model(v, 0.65, 0.64, seed=10 + i) for i, m in enumerate(ch03_iba.ORDER)}
    claim = _claim1(attacked, clean)
    assert claim.verdict == "not reproduced"
    verdicts = {c["measure"].split(",")[0]: c["verdict"] for c in claim.criteria}
    assert verdicts["nni: ASR minus the clean control's ASR"] == "reproduced"
    assert verdicts["nni: ASR minus its rate without the trigger"] == "not reproduced"
    assert "ASR minus its rate without the trigger" in claim.note
    assert claim.measure.startswith("prl: ASR minus its rate")  # the first failing criterion


def test_claim1_is_not_reproduced_when_benign_accuracy_falls_and_inconclusive_near_the_margin():
    v = _victims(150)
    clean = _model(v, 0.10, 0.10, seed=1)
    worse = {m: _model(v, 0.90, 0.12, seed=10 + i) for i, m in enumerate(ch03_iba.ORDER)}
    worse["nni"] = ModelCounts(
        worse["nni"].flips,
        worse["nni"].flips_untriggered,
        v,
        _iou(60, 0.45, seed=100),  # CBA about 15 points below the clean control's
        worse["nni"].triggered_iou,
    )
    claim = _claim1(worse, clean)
    assert claim.verdict == "not reproduced" and claim.measure.startswith("nni: CBA")
    assert claim.effect < -BENIGN and claim.ci_high < -BENIGN

    few = np.full(12, 100)
    clean = _model(few, 0.10, 0.10, spread=0, seed=1)
    # ASR 30 % on half of the images and 95 % on the others: 50.5 points above the untriggered
    # 12 %, but 12 images cannot tell it from 50
    edge = {
        m: ModelCounts(
            np.tile([30, 95], 6), np.full(12, 12), few, clean.clean_iou, clean.triggered_iou
        )
        for m in ch03_iba.ORDER
    }
    claim = _claim1(edge, clean)
    assert claim.verdict == "inconclusive"
    assert claim.ci_low < ch03_iba.ASR_MARGIN <= claim.ci_high


BENIGN = ch03_iba.BENIGN_TOLERANCE


def test_claim1_needs_the_same_images_for_every_model():
    clean = _model(_victims(20, seed=0), 0.1, 0.1)
    other = _model(_victims(20, seed=1), 0.9, 0.1)
    with pytest.raises(ValueError, match="same images"):
        _claim1({"prl": other}, clean)
    with pytest.raises(ValueError, match="one row per triggered image"):
        ModelCounts(np.ones(3), np.ones(3), np.ones(4), _iou(5, 0.5), _iou(3, 0.5))


@pytest.mark.parametrize(
    "asr, verdict, headline",
    [
        ({"prl": 0.8, "nni": 0.6, "baseline": 0.4}, "reproduced", None),
        ({"prl": 0.4, "nni": 0.6, "baseline": 0.8}, "not reproduced", "ASR(prl) − ASR(nni)"),
        ({"prl": 0.6, "nni": 0.6, "baseline": 0.3}, "inconclusive", "ASR(prl) − ASR(nni)"),
    ],
)
def test_low_rate_order_judges_each_step_by_its_own_interval(asr, verdict, headline):
    v = _victims(200)
    flips = {m: _flips(v, p, spread=0.15, seed=i) for i, (m, p) in enumerate(asr.items())}
    claim = low_rate_order(flips, v, rate=0.1, seed=0)
    assert claim.verdict == verdict and len(claim.criteria) == 2
    if headline:
        assert claim.measure.startswith(headline)
    first = claim.criteria[0]
    expected = 100 * (flips["prl"].sum() - flips["nni"].sum()) / v.sum()
    assert first["effect"] == pytest.approx(expected)  # direction: PRL minus NNI
    assert (asr["prl"] > asr["nni"]) == (first["effect"] > 0)


def test_rules_take_torch_counts_as_the_chapter_passes_them():
    v = _victims(50)
    flips = {
        m: _flips(v, p, seed=i) for i, (m, p) in enumerate(zip(ch03_iba.ORDER, (0.8, 0.5, 0.2)))
    }
    as_numpy = low_rate_order(flips, v, rate=0.1)
    as_torch = low_rate_order(
        {m: torch.tensor(f) for m, f in flips.items()}, torch.tensor(v), rate=0.1
    )
    assert as_torch == as_numpy and as_numpy.verdict == "reproduced"
    near = {m: torch.tensor(f) for m, f in flips.items()}
    far = {m: torch.tensor(_flips(v, 0.2, seed=9)) for m in ch03_iba.ORDER}
    claim = distance_decay(near, far, torch.tensor(v), near_band="a", far_band="b", rate=0.2)
    assert claim.criteria[0]["effect"] == pytest.approx(
        100 * (near["baseline"] - far["baseline"]).sum().item() / v.sum()
    )


def test_low_rate_order_needs_every_method():
    v = _victims(10)
    with pytest.raises(ValueError, match="missing"):
        low_rate_order({"prl": v, "nni": v}, v, rate=0.1)


def _decay(near, far, spread=0.1, n=180):
    v = _victims(n)
    near_flips = {m: _flips(v, p, spread, seed=i) for i, (m, p) in enumerate(near.items())}
    far_flips = {m: _flips(v, p, spread, seed=10 + i) for i, (m, p) in enumerate(far.items())}
    claim = distance_decay(
        near_flips, far_flips, v, near_band="(0, 8]", far_band="(24, 32]", rate=0.2, seed=0
    )
    return claim, near_flips, far_flips, v


def test_distance_decay_reproduced_when_baseline_and_nni_fall_and_prl_holds():
    claim, near, far, v = _decay(
        {"baseline": 0.8, "nni": 0.85, "prl": 0.8}, {"baseline": 0.4, "nni": 0.45, "prl": 0.75}
    )
    assert claim.verdict == "reproduced" and len(claim.criteria) == 4
    drop = claim.criteria[0]
    assert drop["effect"] == pytest.approx(
        100 * (near["baseline"].sum() - far["baseline"].sum()) / v.sum()
    )
    less = claim.criteria[2]
    prl_drop = 100 * (near["prl"].sum() - far["prl"].sum()) / v.sum()
    assert less["effect"] == pytest.approx(drop["effect"] - prl_drop)


def test_distance_decay_not_reproduced_without_a_drop_or_when_prl_falls_as_much():
    flat, *_ = _decay(
        {"baseline": 0.7, "nni": 0.8, "prl": 0.8}, {"baseline": 0.7, "nni": 0.45, "prl": 0.75}
    )
    assert flat.verdict == "not reproduced" and flat.measure.startswith("baseline: ASR(band")
    prl_falls, *_ = _decay(
        {"baseline": 0.8, "nni": 0.85, "prl": 0.9}, {"baseline": 0.4, "nni": 0.45, "prl": 0.2}
    )
    assert prl_falls.verdict == "not reproduced"
    assert prl_falls.measure.startswith("baseline's drop − PRL's drop") and prl_falls.effect < 0


def test_distance_decay_inconclusive_when_the_drop_is_near_the_threshold():
    claim, *_ = _decay(
        {"baseline": 0.8, "nni": 0.85, "prl": 0.8},
        {"baseline": 0.7, "nni": 0.45, "prl": 0.79},
        spread=0.3,
        n=40,
    )
    assert claim.verdict == "inconclusive"
    assert claim.ci_low < ch03_iba.DISTANCE_DROP <= claim.ci_high


def test_miou_difference_pools_images_and_resamples_them():
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, K, (30, 6, 6), generator=g)
    good = torch.where(torch.rand(30, 6, 6, generator=g) < 0.8, labels, (labels + 1) % K)
    bad = torch.where(torch.rand(30, 6, 6, generator=g) < 0.5, labels, (labels + 1) % K)
    a, b = iou_counts(good, labels, K), iou_counts(bad, labels, K)
    diff = miou_difference(a, b, seed=0)
    expected = mean_iou(good, labels, K).value - mean_iou(bad, labels, K).value
    assert diff.value == pytest.approx(expected) and diff.n == 30
    assert diff.low < diff.value < diff.high and diff.low > 0  # the better model is clearly better
    assert miou_difference(b, a, seed=0).value == pytest.approx(-expected)
    assert miou_difference(a, b, seed=0) == diff  # seeded
    some = [0, 2]
    assert miou_difference(a, b, classes=some, seed=0).value == pytest.approx(
        miou_from_counts(*a, some) - miou_from_counts(*b, some)
    )
    same = miou_difference(a, a)
    assert (same.value, same.low, same.high) == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="N >= 2"):
        miou_difference((a[0][:1], a[1][:1]), (b[0][:1], b[1][:1]))
