"""Compare two builds' results records: every metric and every claim must be identical.

    python tools/compare_results.py OLD_DIR NEW_DIR

Each directory holds the ``<chapter>.json`` records of one book build
(``book/generated/results``). Metrics are compared leaf by leaf; timings (keys naming a wall
time, a throughput or seconds) are exempt, as are the records' commit, versions, dates, device
and memory fields, which are not metrics. Claims are compared field by field. Prints every
difference and exits 1 if there is any.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

#: Metric keys that measure time, not results.
TIMING = re.compile(r"wall_time|throughput|(^|_)s$|seconds|_per_s$")


def leaves(value, path: str = ""):
    """``(path, value)`` of every leaf of a nested JSON value."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from leaves(item, f"{path}/{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from leaves(item, f"{path}[{index}]")
    else:
        yield path, value


def exempt(path: str) -> bool:
    """Whether a metric path names a timing."""
    return any(TIMING.search(part) for part in re.split(r"[/\[\]]", path) if part)


def differences(old: dict, new: dict) -> list[str]:
    """The differing metrics and claims of one chapter's two records."""
    found = []
    old_metrics = {p: v for p, v in leaves(old["metrics"]) if not exempt(p)}
    new_metrics = {p: v for p, v in leaves(new["metrics"]) if not exempt(p)}
    for path in sorted(old_metrics.keys() | new_metrics.keys()):
        if old_metrics.get(path, "<missing>") != new_metrics.get(path, "<missing>"):
            found.append(
                f"metric {path}: {old_metrics.get(path, '<missing>')!r} -> "
                f"{new_metrics.get(path, '<missing>')!r}"
            )
    old_claims = {c["id"]: c for c in old["claims"]}
    new_claims = {c["id"]: c for c in new["claims"]}
    for claim in sorted(old_claims.keys() | new_claims.keys()):
        a, b = old_claims.get(claim, {}), new_claims.get(claim, {})
        for key in sorted(a.keys() | b.keys()):
            if a.get(key) != b.get(key):
                found.append(f"claim {claim} {key}: {a.get(key)!r} -> {b.get(key)!r}")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    args = parser.parse_args(argv)
    chapters = sorted(
        {p.name for p in args.old.glob("*.json")} | {p.name for p in args.new.glob("*.json")}
    )
    failed = False
    for name in chapters:
        old_path, new_path = args.old / name, args.new / name
        if not (old_path.exists() and new_path.exists()):
            print(f"{name}: only in {'new' if new_path.exists() else 'old'}")
            failed = True
            continue
        old, new = json.loads(old_path.read_text()), json.loads(new_path.read_text())
        found = differences(old, new)
        metrics = sum(1 for p, _ in leaves(old["metrics"]) if not exempt(p))
        print(
            f"{name}: {metrics} metric values and {len(old['claims'])} claims compared, "
            f"{len(found)} differences"
        )
        for line in found:
            print(f"  {line}")
        failed |= bool(found)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
