"""Chapter 0's claims: the pretrained CIFAR-10 ResNets' reported accuracies and their ordering.

The reported figures are Idelbayev's (akamaster/pytorch_resnet_cifar10 README) [code]. Our
accuracies are rates over the same test images for every depth, so the ordering is tested with
paired differences.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .core import Claim, Criterion, make_claim
from .intervals import Interval, paired_bootstrap, wilson

#: Within this many points of the reported accuracy counts as reproducing it (fixed in advance).
ACCURACY_TOLERANCE = 2.0


def _accuracy(correct: np.ndarray) -> Interval:
    correct = np.asarray(correct, dtype=bool)
    return wilson(int(correct.sum()), len(correct))


def resnet_accuracy(correct: Mapping[int, np.ndarray], reported: Mapping[int, float]) -> Claim:
    """Every depth's test accuracy lies within :data:`ACCURACY_TOLERANCE` points of its reported
    figure: ``ours - reported`` (Wilson interval of ours) at least ``-tol`` and at most ``+tol``.

    ``correct`` maps depth -> per-image correctness ``[n]`` (bool) on the test images.
    """
    criteria = []
    for depth, hits in correct.items():
        ours = _accuracy(hits)
        gap = Interval(
            ours.value - reported[depth],
            ours.low - reported[depth],
            ours.high - reported[depth],
            ours.n,
        )
        measure = f"ResNet-{depth}: our test CA − reported (points)"
        criteria += [
            Criterion(measure, gap, -ACCURACY_TOLERANCE, "at least"),
            Criterion(measure, gap, ACCURACY_TOLERANCE, "at most"),
        ]
    n = len(next(iter(correct.values())))
    ours = ", ".join(f"ResNet-{d} {100 * np.mean(c):.2f} %" for d, c in correct.items())
    return make_claim(
        "resnet-accuracy",
        "The pretrained CIFAR-10 ResNet-20/32/44/56 reach 91.78–93.62 % test accuracy.",
        criteria,
        rule=f"for every depth, the 95 % interval of our test CA − the reported CA lies within "
        f"±{ACCURACY_TOLERANCE:g} points",
        ours=f"{ours} (n = {n})",
        paper="91.78 / 92.78 / 93.14 / 93.62 %",
        source="[code]",
    )


def resnet_depth_order(correct: Mapping[int, np.ndarray], seed: int = 0) -> Claim:
    """Deeper is at least as accurate: for consecutive depths, the paired difference of per-image
    correctness (deeper − shallower, points) is at least 0."""
    depths = sorted(correct)
    criteria = [
        Criterion(
            f"CA ResNet-{b} − ResNet-{a} (points, paired)",
            paired_bootstrap(
                100.0 * np.asarray(correct[b], dtype=float),
                100.0 * np.asarray(correct[a], dtype=float),
                seed=seed,
            ),
            0.0,
        )
        for a, b in zip(depths, depths[1:])
    ]
    return make_claim(
        "resnet-depth-order",
        "Deeper CIFAR ResNets are more accurate (20 < 32 < 44 < 56).",
        criteria,
        rule="for consecutive depths, the 95 % interval of the paired CA difference (deeper − "
        "shallower) lies at or above 0",
        ours=" ≤ ".join(f"{100 * np.mean(correct[d]):.2f}" for d in depths) + " %",
        paper="91.78 < 92.78 < 93.14 < 93.62 %",
        source="[code]",
    )
