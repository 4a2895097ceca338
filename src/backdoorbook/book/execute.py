"""Execute the book's chapters with papermill, and keep what readers must not see off the pages.

A chapter is a MyST notebook (``notebooks/<stem>.md``). :func:`execute_chapter` runs it with the
``profile`` and ``seed`` parameters into ``<out_dir>/<stem>.ipynb``; the first failing cell stops
it, naming the chapter and the cell, and so does an output that shows a warning, a progress bar
or an absolute path of the build machine (the executed notebooks are what readers see and
download). :func:`execute_chapters` runs several, one after the other or ``jobs`` at a time, each
worker pinned to its own core, so that a chapter whose profile asks for every core gets one.
``tools/build_book.py`` and :mod:`backdoorbook.book.stability` both execute chapters this way.
"""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing
import os
import platform
import re
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import jupytext
import nbformat
import papermill

from backdoorbook.book.chapter import RESULTS_ENV
from backdoorbook.book.output_text import excerpt, text_problems
from backdoorbook.book.profiles import get_profile
from backdoorbook.runtime import REPO_ROOT

NOTEBOOKS = REPO_ROOT / "notebooks"


class ChapterFailed(RuntimeError):
    """A chapter's cell raised or showed a forbidden output; the message names the chapter and
    the cell."""


def execute_chapter(
    stem: str, profile: str, seed: int, out_dir: Path, notebooks: Path = NOTEBOOKS
) -> float:
    """Execute ``<notebooks>/<stem>.md`` into ``<out_dir>/<stem>.ipynb``; return its wall time.

    Records go where ``$BACKDOORBOOK_RESULTS`` says (the kernel inherits the environment)."""
    source = notebooks / f"{stem}.md"
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
            cwd=str(notebooks),
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
    seconds = time.perf_counter() - start
    problems = finalise_notebook(executed, source)
    if problems:
        raise ChapterFailed(
            f"chapter {stem}: {len(problems)} output(s) that must not reach the book "
            "(fix the chapter or the library so that nothing is printed there):\n"
            + "".join(f"  - {p}\n" for p in problems)
            + f"  executed notebook: {executed}"
        )
    return seconds


def execute_chapters(
    stems: list[str],
    profile: str,
    seed: int,
    out_dir: Path,
    results: Path,
    jobs: int = 1,
    notebooks: Path = NOTEBOOKS,
    keep_going: bool = False,
) -> dict:
    """Execute ``stems`` (``jobs`` at a time, each worker on one core of its own when ``jobs`` >
    1), writing their records into ``results``; return the build log, chapters in the order of
    ``stems``. A bad profile name fails before any chapter runs. The first failure stops the
    build (with ``jobs`` > 1, once the chapters already running have finished), unless
    ``keep_going``: then the log marks the chapter ``failed`` with its message and the rest run."""
    for stem in stems:
        get_profile(stem, profile)
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if jobs < 1 or (jobs > 1 and jobs > len(cores)):
        raise ValueError(f"jobs must be between 1 and the {len(cores)} cores available, got {jobs}")
    os.environ[RESULTS_ENV] = str(results)
    os.environ.setdefault("TQDM_DISABLE", "1")  # progress bars help at a terminal, not in the book
    # Dependencies that import tqdm.auto in a kernel without ipywidgets warn that widget bars are
    # unavailable; the book draws no bars, so that one warning is not shown.
    os.environ["PYTHONWARNINGS"] = "ignore:IProgress not found"
    log = {
        "profile": profile,
        "seed": seed,
        "jobs": jobs,
        "machine": f"{platform.node()} ({platform.machine()}, {os.cpu_count()} cores)",
        "chapters": [],
    }
    start = time.perf_counter()
    task = (profile, seed, out_dir, notebooks, keep_going)
    if jobs == 1:
        outcomes = {stem: _run_announced(stem, *task) for stem in stems}
    else:
        outcomes = _execute_in_parallel(stems, task, cores[:jobs])
    for stem in stems:
        seconds, error = outcomes[stem]
        entry = {"chapter": stem, "profile": profile, "wall_time_s": round(seconds, 1)}
        entry |= {"status": "ok"} if error is None else {"status": "failed", "error": error}
        log["chapters"].append(entry)
    log["total_chapter_time_s"] = round(sum(seconds for seconds, _ in outcomes.values()), 1)
    log["total_wall_time_s"] = round(time.perf_counter() - start, 1)
    log["finished_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    return log


def _run_announced(
    stem: str, profile: str, seed: int, out_dir: Path, notebooks: Path, keep_going: bool
) -> tuple[float, str | None]:
    """``(seconds, None)``, or with ``keep_going`` ``(seconds, message)`` for a failed chapter."""
    print(f"[book] executing {stem} (profile {profile}, seed {seed}) ...", flush=True)
    start = time.perf_counter()
    try:
        seconds = execute_chapter(stem, profile, seed, out_dir, notebooks)
    except ChapterFailed as err:
        if not keep_going:
            raise
        print(f"[book] {stem} FAILED: {str(err).splitlines()[0]}", flush=True)
        return time.perf_counter() - start, str(err)
    print(f"[book] {stem} done in {seconds:.1f} s", flush=True)
    return seconds, None


def _pin_to_next_core(cores) -> None:
    os.sched_setaffinity(0, {cores.get()})  # the kernel papermill starts inherits the core


def _execute_in_parallel(stems, task, cores) -> dict[str, tuple[float, str | None]]:
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        free_cores = manager.Queue()
        for core in cores:
            free_cores.put(core)
        with ProcessPoolExecutor(
            len(cores), mp_context=context, initializer=_pin_to_next_core, initargs=(free_cores,)
        ) as pool:
            futures = {stem: pool.submit(_run_announced, stem, *task) for stem in stems}
            return {stem: future.result() for stem, future in futures.items()}


# --------------------------------------------------------------------------- clean pages


def machine_paths() -> list[str]:
    """Absolute paths of this machine that no page may show, longest first, as given and
    resolved: the repository, the Python environment (``sys.prefix``), the home directory,
    and the data roots and cache the chapters read (``$BACKDOORBOOK_DATA``,
    ``$BACKDOORBOOK_CACHE``)."""
    paths = [REPO_ROOT, Path(sys.prefix), Path.home()]
    for variable in ("BACKDOORBOOK_DATA", "BACKDOORBOOK_CACHE"):
        paths += [Path(p) for p in os.environ.get(variable, "").split(os.pathsep) if p.strip()]
    found = set()
    for path in paths:
        path = path.expanduser()
        for variant in (path, path.resolve()):
            if variant.is_absolute() and len(variant.parts) > 1:  # never "/" itself
                found.add(str(variant))
    return sorted(found, key=len, reverse=True)


def _path_pattern(paths: list[str]) -> re.Pattern | None:
    if not paths:
        return None
    alternatives = "|".join(re.escape(p) for p in paths)
    return re.compile(rf"(?<![\w.~-])(?:{alternatives})(?![\w.-])")


def _output_texts(outputs: list[dict]) -> list[tuple[str, str]]:
    """(label, text) for what a cell's ``outputs`` show: each stream, its chunks joined (as the
    page shows them), and each text-like MIME type of the other outputs."""
    streams: dict[str, str] = {}
    texts = []
    for output in outputs:
        if output.get("output_type") == "stream":
            name = output.get("name", "stream")
            streams[name] = streams.get(name, "") + _joined(output.get("text", ""))
            continue
        for mime, value in (output.get("data") or {}).items():
            if mime.startswith("text/") or mime == "application/json":
                texts.append((mime, value if isinstance(value, str) else _joined(value)))
    return list(streams.items()) + texts


def _joined(value) -> str:
    if isinstance(value, list):
        return "".join(map(str, value))
    return value if isinstance(value, str) else json.dumps(value)


def _cell_label(index: int, cell: dict) -> str:
    first = next((line for line in _joined(cell.get("source", "")).splitlines() if line), "")
    first = first if len(first) <= 60 else first[:57] + "..."
    count = cell.get("execution_count")
    return f"cell {index}" + (f" (execution count {count})" if count else "") + f" {first!r}"


def output_problems(nb: dict, paths: list[str] | None = None) -> list[str]:
    """What the executed notebook ``nb`` shows that the book must not: warnings, progress bars
    and ``paths`` (default: :func:`machine_paths`), each named by cell and with its text."""
    pattern = _path_pattern(machine_paths() if paths is None else paths)
    problems = []
    for index, cell in enumerate(nb.get("cells", [])):
        outputs = cell.get("outputs", [])
        where = _cell_label(index, cell)
        if any("widget" in mime for output in outputs for mime in output.get("data") or {}):
            problems.append(
                f"{where}: a Jupyter widget (a progress bar?), which needs a CDN script "
                "and renders nowhere in the static book"
            )
        for label, text in _output_texts(outputs):
            found = text_problems(text)
            if pattern and (m := pattern.search(text)):
                found.append(
                    f"an absolute path of the build machine ({m.group()}): {excerpt(text, m)!r}"
                )
            problems += [f"{where}: {label} shows {p}" for p in found]
    if pattern:  # sources and metadata (the download holds them too)
        rest = {
            "metadata": nb.get("metadata", {}),
            "cells": [
                {"source": c.get("source"), "metadata": c.get("metadata")}
                for c in nb.get("cells", [])
            ],
        }
        if m := pattern.search(json.dumps(rest)):
            problems.append(f"the notebook's sources or metadata hold {m.group()}")
    return problems


def finalise_notebook(executed: Path, source: Path) -> list[str]:
    """Prepare an executed chapter for the book, in place, and return its output problems.

    Papermill's injected parameters cell is tagged ``remove-cell`` (the page shows the
    source's own parameters cell; the values used are in the chapter's outputs and the
    execution report); papermill's record of the input and output paths is made relative.
    """
    nb = nbformat.read(executed, as_version=nbformat.NO_CONVERT)
    for cell in nb.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            cell.metadata["tags"] = [*tags, "remove-cell"]
    record = nb.metadata.get("papermill")
    if record is not None:
        record["input_path"] = _relative(source)
        record["output_path"] = _relative(executed)
    nbformat.write(nb, executed)
    return output_problems(nb)


def _relative(path: Path) -> str:
    try:
        return path.resolve().relative_to(REPO_ROOT.resolve()).as_posix()
    except ValueError:
        return path.name
