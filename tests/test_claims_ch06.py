"""Chapter 6's claim rules on synthetic per-image outcomes: every verdict where it should be."""

import numpy as np
import pytest

from backdoorbook.claims import ch06_transferability as rules

EPS = (8, 16)
N = 120


def baseline(seed=0, n=N):
    """Per-image success (%) of a baseline arm: 0 or 100, about half of each."""
    return 100.0 * (np.random.default_rng(seed).random(n) < 0.5)


def shifted(base, up, down, seed=1):
    """``base`` with ``up`` images raised from 0 to 100 and ``down`` lowered from 100 to 0."""
    rng = np.random.default_rng(seed)
    out = base.copy()
    out[rng.choice(np.flatnonzero(base == 0), up, replace=False)] = 100.0
    out[rng.choice(np.flatnonzero(base == 100), down, replace=False)] = 0.0
    return out


#: (images raised, images lowered) against the baseline, and the verdict they must give.
CASES = {
    "reproduced": (30, 0),  # +25 points, the interval well above the 1-point margin
    "not reproduced": (0, 30),  # -25 points
    "inconclusive": (4, 2),  # +1.7 points with a half-width near 4: straddles the margin
}


def pair(verdict, seed=0):
    up, down = CASES[verdict]
    base = {e: baseline(seed + e) for e in EPS}
    return {e: shifted(b, up, down, seed + e) for e, b in base.items()}, base


@pytest.mark.parametrize("verdict", list(CASES))
def test_momentum_rule_reaches_each_verdict(verdict):
    better, worse = pair(verdict)
    claim = rules.momentum_beats_iterative(better, worse, seed=0)
    assert claim.verdict == verdict and claim.id == "ifgsm-below-mifgsm"
    assert claim.n == N and claim.threshold == rules.MARGIN and len(claim.criteria) == len(EPS)
    assert claim.ci_low <= claim.effect <= claim.ci_high
    assert f"n = {N} images" in claim.ours


@pytest.mark.parametrize("verdict", list(CASES))
def test_within_family_rule_reaches_each_verdict(verdict):
    within, across = pair(verdict)
    claim = rules.within_family_transfer(within, across, families=["VGG", "ViT"], seed=0)
    assert claim.verdict == verdict and "VGG/ViT" in claim.rule


@pytest.mark.parametrize("verdict", list(CASES))
def test_input_transform_rule_needs_every_transformation(verdict):
    good, mi = pair("reproduced")
    other = {e: shifted(mi[e], *CASES[verdict], seed=5 + e) for e in EPS}  # decides the verdict
    claim = rules.input_transforms_add_to_momentum({"DI-MI": good, "TI-MI": other}, mi, seed=0)
    assert claim.verdict == verdict
    assert len(claim.criteria) == 2 * len(EPS)
    if verdict != "reproduced":
        assert claim.measure.startswith("TI-MI − MI-FGSM")


@pytest.mark.parametrize("verdict", list(CASES))
def test_ensemble_rule_compares_with_every_member(verdict):
    ensemble = {e: baseline(e) for e in EPS}
    weaker = {e: shifted(ensemble[e], 0, 30, seed=6 + e) for e in EPS}  # well behind the ensemble
    # raised where the ensemble's outcome was lowered and vice versa: the case's effect
    close = {e: shifted(ensemble[e], *CASES[verdict][::-1], seed=7 + e) for e in EPS}
    claim = rules.ensemble_transfers_best(
        ensemble,
        {"ResNet-20": weaker, "ResNet-44": close},
        targets=["ResNet-56", "ViT"],
        seed=0,
    )
    assert claim.verdict == verdict
    assert len(claim.criteria) == 2 * len(EPS) and "ResNet-56, ViT" in claim.rule
    if verdict != "reproduced":
        assert "ResNet-44" in claim.measure


def test_a_criterion_fails_at_one_budget_only():
    better, worse = pair("reproduced")
    better[16] = worse[16].copy()  # no gain at the larger budget: a zero-width interval at 0
    claim = rules.momentum_beats_iterative(better, worse, seed=0)
    assert claim.verdict == "not reproduced" and "16/255" in claim.measure
    assert claim.effect == claim.ci_low == claim.ci_high == 0


def test_swapping_the_arms_reverses_the_effect():
    better, worse = pair("reproduced")
    forward = rules.momentum_beats_iterative(better, worse, seed=3)
    backward = rules.momentum_beats_iterative(worse, better, seed=3)
    assert forward.verdict == "reproduced" and backward.verdict == "not reproduced"
    for f, b in zip(forward.criteria, backward.criteria):
        assert b["effect"] == pytest.approx(-f["effect"])
        assert b["ci_high"] < 0 < f["ci_low"]


def test_the_seed_fixes_the_interval():
    better, worse = pair("inconclusive")
    first = rules.momentum_beats_iterative(better, worse, seed=4)
    assert first == rules.momentum_beats_iterative(better, worse, seed=4)
    assert first.criteria != rules.momentum_beats_iterative(better, worse, seed=5).criteria


def test_the_effect_is_the_difference_of_the_mean_per_image_success():
    worse = {e: np.array([0.0, 50.0, 100.0, 25.0]) for e in EPS}
    better = {e: np.array([100.0, 50.0, 100.0, 75.0]) for e in EPS}
    claim = rules.momentum_beats_iterative(better, worse, seed=0)
    assert [c["effect"] for c in claim.criteria] == pytest.approx([37.5, 37.5])
    assert all(c["n"] == 4 for c in claim.criteria)


def test_bad_outcomes_are_clear_errors():
    better, worse = pair("reproduced")
    with pytest.raises(ValueError, match="same budgets"):
        rules.momentum_beats_iterative(better, {8: worse[8]}, seed=0)
    with pytest.raises(ValueError, match="one value per attacked image"):
        rules.momentum_beats_iterative(better, {e: v[:-1] for e, v in worse.items()}, seed=0)
    with pytest.raises(ValueError, match=r"\[0, 100\]"):
        rules.momentum_beats_iterative({e: v / 100 - 1 for e, v in better.items()}, worse, seed=0)
    with pytest.raises(ValueError, match="member surrogate"):
        rules.ensemble_transfers_best(better, {}, targets=["ViT"], seed=0)
    with pytest.raises(ValueError, match="baseline"):
        rules.input_transforms_add_to_momentum({"MI-FGSM": better}, worse, seed=0)
