"""Benchmark: decode all 60,000 CIFAR-10 images (train + test), cold and from cache.

Usage: BACKDOORBOOK_DATA=../shared/data python bench/decode_cifar10.py

The cold run uses a fresh temporary cache dir and a fresh process (so the sha256 check is
included, not memoised); the cached run is a second fresh process over the same cache.
Targets on the 2-core build machine: cold < 20 s, cached < 2 s.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

CHILD = """
import time
t0 = time.perf_counter()
from backdoorbook.data import load_classification
t1 = time.perf_counter()
n = 0
for split in ("train", "test"):
    a = load_classification("cifar10", split)
    n += len(a)
    assert a.images.shape[1:] == (32, 32, 3)
t2 = time.perf_counter()
print(f"{n} {t2 - t0:.3f} {t1 - t0:.3f}")
"""


def run(cache: str) -> tuple[int, float, float]:
    env = dict(os.environ, BACKDOORBOOK_CACHE=cache, BACKDOORBOOK_PROGRESS="0")
    out = subprocess.run(
        [sys.executable, "-c", CHILD], env=env, check=True, capture_output=True, text=True
    )
    n, secs, imp = out.stdout.split()
    return int(n), float(secs), float(imp)


def main() -> int:
    if not os.environ.get("BACKDOORBOOK_DATA"):
        print("set BACKDOORBOOK_DATA (e.g. ../shared/data)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="bb-bench-cache-") as cache:
        n, cold, imp_cold = run(cache)
        _, cached, imp_cached = run(cache)
    print(
        f"cifar10: {n} images (times include importing backdoorbook.data/torch: "
        f"{imp_cold:.2f} s cold, {imp_cached:.2f} s cached)"
    )
    print(f"cold   (decode + sha256 + cache write): {cold:.2f} s  (target < 20 s)")
    print(f"cached (sha256 + np.load):              {cached:.2f} s  (target < 2 s)")
    return 0 if cold < 20 and cached < 2 else 1


if __name__ == "__main__":
    sys.exit(main())
