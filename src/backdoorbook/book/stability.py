"""Seed stability: rebuild chapters under several seeds and tabulate every claim's verdict.

A chapter's ``seed`` drives its own randomness (image subsets, episodes, attack and purification
noise, the bootstrap); a shipped artifact keeps the seed it was trained with, unless it is cheap
enough to be shipped trained under that seed too (:func:`backdoorbook.artifacts.for_seed`), and
then the seed redraws the model as well. A verdict that changes with the seed is decided by
sampling noise, whatever its interval says. ::

    python -m backdoorbook.book.stability --chapters 00_data 05_flba --seeds 0 1 2
    python -m backdoorbook.book.stability --seeds 0 1 2          # every chapter of the book

Each (chapter, seed) run executes the chapter exactly as the book build does (``--jobs 2``: two
chapters at a time, one core each), into a temporary folder, and its claims are merged into
:data:`STABILITY` (``book/seed_stability.json``, committed), replacing that chapter's earlier
runs under the same seeds; a chapter that fails under a seed is recorded as failed with its
message, and the command then exits with status 1. The book build
reads the stored table into the execution report and never reruns it. Like a recipe, the command
runs from a clean committed tree (``--allow-dirty`` records a ``-dirty`` commit, for trials).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
from pathlib import Path

from backdoorbook import runtime
from backdoorbook.book.chapter import load_records
from backdoorbook.book.execute import execute_chapters
from backdoorbook.book.profiles import CHAPTERS, profile_names
from backdoorbook.recipes.common import DirtyTreeError

STABILITY = runtime.REPO_ROOT / "book" / "seed_stability.json"


def run_seed(stems: list[str], profile: str, seed: int, jobs: int = 1) -> list[dict]:
    """Execute ``stems`` under ``seed`` (``jobs`` at a time) in a temporary folder; return one
    table entry per chapter: per claim its verdict and headline criterion (effect, interval,
    threshold, n), or the chapter's failure."""
    with tempfile.TemporaryDirectory(prefix=f"stability-{seed}-") as tmp:
        log = execute_chapters(
            stems,
            profile,
            seed,
            Path(tmp) / "chapters",
            Path(tmp) / "results",
            jobs=jobs,
            keep_going=True,
        )
        records = {r["chapter"]: r for r in load_records(Path(tmp) / "results")}
    entries = []
    for chapter in log["chapters"]:
        entry = {"chapter": chapter["chapter"], "profile": profile, "seed": seed}
        if chapter["status"] != "ok":
            entries.append(entry | {"status": "failed", "error": chapter["error"].splitlines()[0]})
            continue
        record = records[chapter["chapter"]]
        entries.append(
            entry
            | {
                "status": "ok",
                "git_commit": record["git_commit"],
                "wall_time_s": chapter["wall_time_s"],
                "claims": [_claim_summary(c) for c in record["claims"]],
            }
        )
    return entries


def _claim_summary(claim: dict) -> dict:
    keys = ("effect", "ci_low", "ci_high", "threshold", "n")
    return {"id": claim["id"], "verdict": claim["verdict"]} | {k: claim.get(k) for k in keys}


def merge(table: dict, entries: list[dict]) -> dict:
    """``table`` with ``entries`` added, each replacing an earlier entry of its chapter, profile
    and seed; entries sorted by chapter, profile and seed."""

    def key(e):
        return (e["chapter"], e["profile"], e["seed"])

    kept = {key(e): e for e in table.get("entries", [])}
    kept.update({key(e): e for e in entries})
    return {
        "updated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": "python -m backdoorbook.book.stability",
        "entries": [kept[k] for k in sorted(kept)],
    }


def verdict_rows(table: dict, profile: str) -> dict[str, list[list]]:
    """Per chapter, one row per claim: its id, its verdict under each seed the table holds for
    ``profile`` (``failed`` where the chapter failed, ``—`` where the claim is missing), and
    whether the verdicts agree."""
    by_chapter: dict[str, dict[int, dict]] = {}
    for e in table.get("entries", []):
        if e["profile"] == profile:
            by_chapter.setdefault(e["chapter"], {})[e["seed"]] = e
    rows = {}
    for chapter, runs in sorted(by_chapter.items()):
        seeds = sorted(runs)
        ids = list(dict.fromkeys(c["id"] for s in seeds for c in runs[s].get("claims", [])))
        chapter_rows = []
        for claim_id in ids:
            verdicts = []
            for s in seeds:
                if runs[s]["status"] != "ok":
                    verdicts.append("failed")
                    continue
                found = [c for c in runs[s]["claims"] if c["id"] == claim_id]
                verdicts.append(found[0]["verdict"] if found else "—")
            chapter_rows.append([claim_id, *verdicts, "yes" if len(set(verdicts)) == 1 else "no"])
        if not ids:  # every run of the chapter failed
            chapter_rows.append(["(no claims)", *(runs[s]["status"] for s in seeds), "no"])
        rows[chapter] = [["Claim", *(f"seed {s}" for s in seeds), "Stable"], *chapter_rows]
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chapters", nargs="+", help="chapter stems (default: every chapter)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--profile", default="ci")
    parser.add_argument(
        "--jobs", type=int, default=1, help="chapters executed at a time, each on a core of its own"
    )
    parser.add_argument("--output", type=Path, default=STABILITY)
    parser.add_argument(
        "--allow-dirty", action="store_true", help="run from uncommitted changes (trials only)"
    )
    args = parser.parse_args(argv)
    stems = args.chapters or list(CHAPTERS)
    for stem in stems:
        if args.profile not in profile_names(stem):
            parser.error(f"chapter {stem} has no profile {args.profile!r}")
    commit = runtime.git_commit()
    if commit.endswith("-dirty") and not args.allow_dirty:
        raise DirtyTreeError(
            f"uncommitted changes ({commit}): the stability table is made from a clean committed "
            "tree (commit first, or pass --allow-dirty for a trial)"
        )
    entries = []
    for seed in args.seeds:
        entries += run_seed(stems, args.profile, seed, args.jobs)
        for entry in entries[-len(stems) :]:
            print(f"[stability] {entry['chapter']} seed {seed}: {entry['status']}", flush=True)
        table = json.loads(args.output.read_text()) if args.output.exists() else {}
        args.output.write_text(json.dumps(merge(table, entries), indent=2) + "\n")
    failed = [f"{e['chapter']} seed {e['seed']}" for e in entries if e["status"] != "ok"]
    if failed:
        print(f"[stability] failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    print(f"[stability] table in {args.output}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
