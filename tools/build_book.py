"""Build the book: execute every chapter with papermill, generate the scorecard and the
execution report from the results records, then render HTML with Jupyter Book (execution off).

Chapters are the MyST notebooks in ``notebooks/`` that ``book/_toc.yml`` lists as
``generated/chapters/<stem>``. The first failing cell stops the build, naming the chapter and
the cell.

    python tools/build_book.py                      # all chapters, profile ci, then HTML
    python tools/build_book.py --profile paper      # paper scale (meant for a GPU)
    python tools/build_book.py --chapters 00_data   # execute one chapter (no HTML)
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import jupytext
import papermill
import yaml

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
NOTEBOOKS = ROOT / "notebooks"
GENERATED = BOOK / "generated"
CHAPTER_PREFIX = "generated/chapters/"

sys.path.insert(0, str(ROOT / "src"))
from backdoorbook.book.chapter import RESULTS_ENV, load_records  # noqa: E402
from backdoorbook.book.profiles import get_profile  # noqa: E402
from backdoorbook.book.report import render_execution_report, render_scorecard  # noqa: E402


class ChapterFailed(RuntimeError):
    """A chapter's cell raised; the message names the chapter and the cell."""


def toc_chapters(toc_path: Path = BOOK / "_toc.yml") -> list[str]:
    """The chapter stems listed in the table of contents, in order."""

    def walk(node):
        if isinstance(node, dict):
            if str(node.get("file", "")).startswith(CHAPTER_PREFIX):
                yield node["file"][len(CHAPTER_PREFIX) :]
            for value in node.values():
                yield from walk(value)
        elif isinstance(node, list):
            for item in node:
                yield from walk(item)

    return list(walk(yaml.safe_load(toc_path.read_text())))


def execute_chapter(stem: str, profile: str, seed: int, out_dir: Path) -> float:
    """Execute ``notebooks/<stem>.md`` into ``out_dir/<stem>.ipynb``; return its wall time."""
    source = NOTEBOOKS / f"{stem}.md"
    if not source.exists():
        raise FileNotFoundError(f"chapter {stem!r} is in book/_toc.yml but {source} does not exist")
    out_dir.mkdir(parents=True, exist_ok=True)
    unexecuted = out_dir / f"{stem}.input.ipynb"
    executed = out_dir / f"{stem}.ipynb"
    jupytext.write(jupytext.read(source, fmt="md:myst"), unexecuted)
    start = time.perf_counter()
    try:
        papermill.execute_notebook(
            str(unexecuted),
            str(executed),
            parameters={"profile": profile, "seed": seed},
            kernel_name="python3",
            cwd=str(NOTEBOOKS),
            progress_bar=False,
            log_output=False,
        )
    except papermill.PapermillExecutionError as err:
        raise ChapterFailed(
            f"chapter {stem} failed in cell {err.cell_index} (execution count {err.exec_count}): "
            f"{err.ename}: {err.evalue}\n  executed notebook with the traceback: {executed}"
        ) from err
    finally:
        unexecuted.unlink(missing_ok=True)
    return time.perf_counter() - start


def execute_all(stems: list[str], profile: str, seed: int) -> dict:
    """Execute ``stems`` in order, stopping at the first failure; return the build log."""
    for stem in stems:  # fail fast on a bad profile name before any chapter runs
        get_profile(stem, profile)
    os.environ[RESULTS_ENV] = str(GENERATED / "results")
    os.environ.setdefault("TQDM_DISABLE", "1")  # progress bars help at a terminal, not in the book
    log = {
        "profile": profile,
        "seed": seed,
        "machine": f"{platform.node()} ({platform.machine()}, {os.cpu_count()} cores)",
        "chapters": [],
    }
    for stem in stems:
        print(f"[book] executing {stem} (profile {profile}) ...", flush=True)
        seconds = execute_chapter(stem, profile, seed, GENERATED / "chapters")
        print(f"[book] {stem} done in {seconds:.1f} s", flush=True)
        log["chapters"].append(
            {"chapter": stem, "profile": profile, "wall_time_s": round(seconds, 1), "status": "ok"}
        )
    log["total_wall_time_s"] = round(sum(c["wall_time_s"] for c in log["chapters"]), 1)
    log["finished_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    return log


def write_report_pages(log: dict) -> None:
    """Write the scorecard, the execution report and the build log under ``book/generated``."""
    records = load_records(GENERATED / "results")
    missing = {c["chapter"] for c in log["chapters"]} - {r["chapter"] for r in records}
    if missing:
        raise ChapterFailed(
            f"chapters ran but wrote no results record: {', '.join(sorted(missing))}"
        )
    (GENERATED / "execution.json").write_text(json.dumps(log, indent=2) + "\n")
    (GENERATED / "scorecard.md").write_text(render_scorecard(records))
    (GENERATED / "execution_report.md").write_text(render_execution_report(records, log))


def render_html() -> None:
    """Render the executed book to ``book/_build/html`` (execution is off in ``_config.yml``)."""
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    subprocess.run(
        [str(jupyter_book), "build", str(BOOK), "--warningiserror", "--nitpick", "--quiet"],
        check=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--profile", default=os.environ.get("BACKDOORBOOK_PROFILE", "ci"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--chapters",
        nargs="+",
        help="execute only these stems, without rendering HTML (default: the whole book)",
    )
    args = parser.parse_args(argv)

    stems = toc_chapters()
    if args.chapters:
        unknown = sorted(set(args.chapters) - set(stems))
        if unknown:
            parser.error(
                f"unknown chapter(s) {', '.join(unknown)}; chapters in the TOC: {', '.join(stems)}"
            )
        stems = [s for s in stems if s in args.chapters]
    else:  # a whole-book build starts clean, so no record of an earlier build reaches the scorecard
        shutil.rmtree(GENERATED, ignore_errors=True)
    try:
        log = execute_all(stems, args.profile, args.seed)
        if not args.chapters:
            write_report_pages(log)
    except (ChapterFailed, ValueError) as err:
        print(f"[book] BUILD FAILED: {err}", file=sys.stderr)
        return 1
    if args.chapters:
        print(f"[book] executed notebooks in {GENERATED / 'chapters'}", flush=True)
    else:
        render_html()
        print(f"[book] HTML in {BOOK / '_build' / 'html'}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
