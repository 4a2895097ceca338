"""Achieved FLOP/s of a hot loop against this machine's measured fp32 matmul peak.

A loop's floating-point work is counted by PyTorch's own counter
(:class:`torch.utils.flop_counter.FlopCounterMode`: matmuls and convolutions, forward and
backward, which dominate every loop benchmarked here; element-wise work is not counted, so the
ratio is a lower bound). The peak is the best of a few timed square fp32 matmuls on the same
threads and the same clock, so that ``achieved / peak`` says how much of what this machine can
do the loop gets. The benchmarks in this folder import it (``python bench/<name>.py``).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode


def counted_flops(work: Callable[[], object]) -> int:
    """The matmul and convolution FLOPs that one call of ``work`` performs (it runs once)."""
    with FlopCounterMode(display=False) as counter:
        work()
    return counter.get_total_flops()


def matmul_peak(
    clock: Callable[[], float] = time.perf_counter, size: int = 1024, repeats: int = 10
) -> float:
    """The best FLOP/s of ``size``-square fp32 matmuls on torch's current threads, timed with
    ``clock`` (``time.process_time`` gives FLOPs per CPU second)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = clock()
        a @ b
        best = min(best, clock() - start)
    return 2 * size**3 / best


def efficiency(flops: int, seconds: float, peak: float) -> dict:
    """Achieved GFLOP/s and its fraction of ``peak`` for ``flops`` done in ``seconds``."""
    achieved = flops / seconds
    return {
        "gflop": round(flops / 1e9, 3),
        "achieved_gflops": round(achieved / 1e9, 1),
        "peak_gflops": round(peak / 1e9, 1),
        "fraction_of_peak": round(achieved / peak, 3),
    }


def describe(result: dict) -> str:
    """``12.3 GFLOP/s = 8 % of the measured 155.0 GFLOP/s matmul peak``."""
    return (
        f"{result['achieved_gflops']:.1f} GFLOP/s = {100 * result['fraction_of_peak']:.0f} % "
        f"of the measured {result['peak_gflops']:.1f} GFLOP/s matmul peak"
    )
