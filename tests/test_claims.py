"""The claims core: intervals against reference implementations, verdicts in all three states."""

import numpy as np
import pytest
from scipy import stats

from backdoorbook.claims.core import Criterion, combined_verdict, make_claim
from backdoorbook.claims.intervals import (
    Interval,
    newcombe,
    paired_bootstrap,
    ratio_bootstrap,
    wilson,
)


@pytest.mark.parametrize("k, n", [(0, 7), (3, 10), (37, 64), (64, 64)])
def test_wilson_matches_scipy(k, n):
    reference = stats.binomtest(k, n).proportion_ci(confidence_level=0.9, method="wilson")
    ours = wilson(k, n, confidence=0.9)
    assert ours.low == pytest.approx(100 * reference.low) and ours.high == pytest.approx(
        100 * reference.high
    )
    assert ours.value == pytest.approx(100 * k / n) and ours.n == n


def test_newcombe_reproduces_the_papers_worked_example():
    # Newcombe (1998), Statistics in Medicine 17:873, table II, example (a): 56/70 vs 48/80,
    # method 10 gives 0.0524 to 0.3339.
    ours = newcombe(56, 70, 48, 80)
    assert ours.value == pytest.approx(20.0)
    assert ours.low == pytest.approx(5.24, abs=0.01) and ours.high == pytest.approx(33.39, abs=0.01)


def test_paired_bootstrap_is_seeded_centred_and_about_as_wide_as_the_normal_interval():
    rng = np.random.default_rng(0)
    a = 100.0 * (rng.random(400) < 0.6)
    b = np.where(rng.random(400) < 0.9, a, 100.0 - a)  # b agrees with a on 90 % of the units
    first, again = paired_bootstrap(a, b, seed=3), paired_bootstrap(a, b, seed=3)
    assert first == again and first.n == 400
    d = a - b
    normal = 1.96 * d.std(ddof=1) / np.sqrt(len(d))
    assert first.low < d.mean() < first.high
    assert first.half_width == pytest.approx(normal, rel=0.15)
    assert paired_bootstrap(a, a) == Interval(0.0, 0.0, 0.0, 400)  # every unit agrees
    with pytest.raises(ValueError, match="paired"):
        paired_bootstrap(a, b[:-1])


def test_ratio_bootstrap_pools_clusters():
    totals = np.array([10, 20, 30, 40])
    hits_a, hits_b = np.array([5, 10, 15, 20]), np.array([1, 2, 3, 4])
    ours = ratio_bootstrap(hits_a, hits_b, totals, seed=0)
    assert ours.value == pytest.approx(100 * (50 - 10) / 100) and ours.n == 4
    assert ours.low <= ours.value <= ours.high
    assert ratio_bootstrap(hits_b, hits_b, totals).half_width == 0


@pytest.mark.parametrize(
    "low, high, direction, expected",
    [
        (6, 9, "at least", "reproduced"),
        (1, 4, "at least", "not reproduced"),
        (3, 7, "at least", "inconclusive"),
        (1, 4, "at most", "reproduced"),
        (6, 9, "at most", "not reproduced"),
        (3, 7, "at most", "inconclusive"),
    ],
)
def test_a_criterion_reaches_each_verdict(low, high, direction, expected):
    criterion = Criterion(
        "a difference (points)", Interval((low + high) / 2, low, high, 50), 5.0, direction
    )
    assert criterion.verdict == expected


def test_claims_combine_their_tests_and_headline_the_deciding_one():
    good = Criterion("first", Interval(8, 6, 10, 50), 5.0)
    edge = Criterion("second", Interval(6, 5.5, 7, 50), 5.0)
    open_ = Criterion("third", Interval(5, 3, 7, 50), 5.0)
    bad = Criterion("fourth", Interval(2, 1, 3, 50), 5.0)
    assert combined_verdict(["reproduced", "inconclusive"]) == "inconclusive"
    claim = make_claim("c", "s", [good, edge], rule="r", ours="o")
    assert claim.verdict == "reproduced" and claim.measure == "second" and len(claim.criteria) == 2
    assert make_claim("c", "s", [good, open_], rule="r", ours="o").measure == "third"
    claim = make_claim("c", "s", [open_, bad], rule="r", ours="o")
    assert claim.verdict == "not reproduced" and (claim.ci_low, claim.ci_high) == (1, 3)
    with pytest.raises(ValueError, match="direction"):
        Criterion("x", Interval(1, 0, 2, 5), 1.0, "above")
