"""Chapter 0's claim rules reach each verdict where they should."""

import numpy as np

from backdoorbook.claims.ch00_data import resnet_accuracy, resnet_depth_order

REPORTED = {20: 91.78, 32: 92.78}


def _correct(rate: float, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    hits = np.zeros(n, dtype=bool)
    hits[rng.permutation(n)[: round(rate * n)]] = True
    return hits


def test_accuracy_claim_is_reproduced_refuted_or_left_open():
    near = {d: _correct(r / 100, 10_000, d) for d, r in REPORTED.items()}
    assert resnet_accuracy(near, REPORTED).verdict == "reproduced"
    far = {d: _correct((r - 10) / 100, 10_000, d) for d, r in REPORTED.items()}
    claim = resnet_accuracy(far, REPORTED)
    assert claim.verdict == "not reproduced" and claim.effect < -2
    edge = {
        d: _correct((r - 2) / 100, 2_000, d) for d, r in REPORTED.items()
    }  # wide interval at -2
    assert resnet_accuracy(edge, REPORTED).verdict == "inconclusive"


def test_depth_order_uses_paired_differences():
    shallow = _correct(0.80, 5_000, 0)
    better = shallow.copy()
    better[np.flatnonzero(~shallow)[:250]] = True  # +5 points on the same images
    assert resnet_depth_order({20: shallow, 32: better}).verdict == "reproduced"
    assert resnet_depth_order({20: better, 32: shallow}).verdict == "not reproduced"
    tie = shallow.copy()
    swap_on, swap_off = np.flatnonzero(~shallow)[:100], np.flatnonzero(shallow)[:100]
    tie[swap_on], tie[swap_off] = True, False  # the same accuracy, different images
    assert resnet_depth_order({20: shallow, 32: tie}).verdict == "inconclusive"
