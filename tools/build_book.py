"""Build the book: execute every chapter with papermill, generate the scorecard and the
execution report from the results records, then render HTML with Jupyter Book (execution off).

Chapters are the MyST notebooks in ``notebooks/`` that ``book/_toc.yml`` lists as
``generated/chapters/<stem>``; :mod:`backdoorbook.book.execute` runs them. The first failing
cell stops the build, naming the chapter and the cell. So does an output that shows a warning, a
progress bar or an absolute path of the build machine (the repository, the Python environment,
the home directory, the data roots): the executed notebooks are what readers see and download.
The scorecard gets a forest plot per chapter; the execution report shows the stored
seed-stability table (``book/seed_stability.json``, made by ``python -m
backdoorbook.book.stability``; the build never reruns it).

    python tools/build_book.py                      # all chapters, profile ci, then HTML
    python tools/build_book.py --profile paper      # paper scale (meant for a GPU)
    python tools/build_book.py --jobs 2             # two chapters at a time, one core each
    python tools/build_book.py --chapters 00_data   # execute one chapter (no HTML)
    python tools/build_book.py --chapters 00_data --html   # ... and render a book of it alone
    python tools/build_book.py --install-mathjax    # once, with network (make setup does it)

The HTML book is self-contained: MathJax comes from the npm package ``mathjax`` (pinned below
by version and sha512), installed once into ``.cache/mathjax/`` and copied into the book's
static files at every render; ``book/_config.yml``'s ``mathjax_path`` points at that copy.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
NOTEBOOKS = ROOT / "notebooks"
GENERATED = BOOK / "generated"
CHAPTER_PREFIX = "generated/chapters/"

# Whatever html_extra_path (book/_config.yml) holds is copied to the root of the HTML build,
# so <book>/generated/_extra/_static/mathjax/ becomes _static/mathjax/. (MathJax cannot sit in
# book/_static: Jupyter Book adds every .js file found there to every page.)
EXTRA = "generated/_extra"

# MathJax 3 from the npm registry: the version Sphinx's default mathjax_path names, and the
# registry's integrity hash of its tarball (`npm view mathjax@3.2.2 dist.integrity`).
MATHJAX_VERSION = "3.2.2"
MATHJAX_INTEGRITY = (
    "sha512-Bt+SSVU8eBG27zChVewOicYs7Xsdt40qm4+UpHyX7k0/"
    "O9NliPc+x77k1/FEsPsjKPZGJvtRZM1vO+geW0OhGw=="
)
MATHJAX_ENTRY = "tex-mml-chtml.js"  # the component book/_config.yml's mathjax_path names
MATHJAX_HOME = Path(
    os.environ.get("BACKDOORBOOK_MATHJAX", ROOT / ".cache" / "mathjax" / MATHJAX_VERSION)
)
# What the book needs of es5/: the component, the extensions and fonts it loads on demand, the
# menu's other renderer (SVG) and its accessibility tools; not the other combined components.
MATHJAX_PARTS = (MATHJAX_ENTRY, "input", "output", "a11y", "ui", "sre")
INSTALL_HINT = (
    "run `make setup` once with network access (or: python tools/build_book.py --install-mathjax)"
)

sys.path.insert(0, str(ROOT / "src"))
from backdoorbook.book.chapter import load_records  # noqa: E402
from backdoorbook.book.execute import ChapterFailed, execute_chapters  # noqa: E402
from backdoorbook.book.report import (  # noqa: E402
    render_execution_report,
    render_scorecard,
    write_forest_plots,
)
from backdoorbook.book.stability import STABILITY  # noqa: E402


class BuildError(RuntimeError):
    """The book cannot be rendered (e.g. MathJax is not installed)."""


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


def write_report_pages(log: dict) -> None:
    """Write the scorecard, the execution report and the build log under ``book/generated``,
    from the records of the chapters in ``log`` (a partial build ignores older records)."""
    ran = {c["chapter"] for c in log["chapters"]}
    records = [r for r in load_records(GENERATED / "results") if r["chapter"] in ran]
    missing = {c["chapter"] for c in log["chapters"]} - {r["chapter"] for r in records}
    if missing:
        raise ChapterFailed(
            f"chapters ran but wrote no results record: {', '.join(sorted(missing))}"
        )
    (GENERATED / "execution.json").write_text(json.dumps(log, indent=2) + "\n")
    write_forest_plots(records, GENERATED)
    (GENERATED / "scorecard.md").write_text(render_scorecard(records, figures=GENERATED))
    stability = json.loads(STABILITY.read_text()) if STABILITY.exists() else None
    (GENERATED / "execution_report.md").write_text(render_execution_report(records, log, stability))


# --------------------------------------------------------------------------- MathJax


def _integrity(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def install_mathjax(home: Path = MATHJAX_HOME, npm: str | None = None) -> Path:
    """Install MathJax ``MATHJAX_VERSION`` into ``home/es5`` and return that folder.

    ``npm pack`` fetches the package's tarball from the registry (network needed, once); its
    sha512 must equal ``MATHJAX_INTEGRITY``. Nothing happens when it is installed already.
    """
    es5 = home / "es5"
    if (es5 / MATHJAX_ENTRY).is_file():
        return es5
    npm = npm or shutil.which("npm")
    if not npm:
        raise BuildError("npm is needed once to install MathJax; install it: apt-get install npm")
    home.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mathjax-", dir=home.parent) as tmp:
        proc = subprocess.run(
            [npm, "pack", "--silent", f"mathjax@{MATHJAX_VERSION}"],
            cwd=tmp,
            capture_output=True,
            text=True,
        )
        tarball = Path(tmp) / f"mathjax-{MATHJAX_VERSION}.tgz"
        if proc.returncode != 0 or not tarball.is_file():
            raise BuildError(
                f"npm pack mathjax@{MATHJAX_VERSION} failed (network?): {proc.stderr.strip()}"
            )
        digest = _integrity(tarball.read_bytes())
        if digest != MATHJAX_INTEGRITY:
            raise BuildError(
                f"mathjax-{MATHJAX_VERSION}.tgz has checksum {digest}, expected "
                f"{MATHJAX_INTEGRITY}; not installed"
            )
        with tarfile.open(tarball) as tar:
            members = [m for m in tar.getmembers() if m.name.startswith("package/es5/")]
            tar.extractall(tmp, members=members, filter="data")
        home.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(es5, ignore_errors=True)
        (Path(tmp) / "package" / "es5").rename(es5)
    return es5


def copy_mathjax(book: Path = BOOK, es5: Path | None = None) -> Path:
    """Copy the installed MathJax into ``book``'s static files; return the entry script."""
    es5 = es5 or MATHJAX_HOME / "es5"
    if not (es5 / MATHJAX_ENTRY).is_file():
        raise BuildError(f"MathJax {MATHJAX_VERSION} is not installed in {es5}; {INSTALL_HINT}")
    missing = [part for part in MATHJAX_PARTS if not (es5 / part).exists()]
    if missing:
        raise BuildError(f"the MathJax in {es5} lacks {', '.join(missing)}; {INSTALL_HINT}")
    target = book / EXTRA / "_static" / "mathjax"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for part in MATHJAX_PARTS:
        if (es5 / part).is_dir():
            shutil.copytree(es5 / part, target / part)
        else:
            shutil.copy2(es5 / part, target / part)
    return target / MATHJAX_ENTRY


# --------------------------------------------------------------------------- HTML


def partial_toc(stems: list[str], toc_path: Path = BOOK / "_toc.yml") -> dict:
    """The table of contents without the chapters not in ``stems`` (empty parts dropped)."""

    def keep(node):
        if isinstance(node, dict):
            name = str(node.get("file", ""))
            if name.startswith(CHAPTER_PREFIX) and name[len(CHAPTER_PREFIX) :] not in stems:
                return None
            kept = {k: keep(v) for k, v in node.items()}
            if "chapters" in node and not kept["chapters"]:
                return None
            return kept
        if isinstance(node, list):
            return [k for k in (keep(item) for item in node) if k is not None]
        return node

    return keep(yaml.safe_load(toc_path.read_text()))


# Links into chapters that a partial book leaves out: a {doc} or {ref} role, a Markdown link.
PARTIAL_SUPPRESSED = ["ref.doc", "ref.ref", "myst.xref_missing"]


def partial_config(config_path: Path = BOOK / "_config.yml") -> dict:
    """``_config.yml`` for a partial book: links to the chapters left out are not errors."""
    config = yaml.safe_load(config_path.read_text())
    sphinx_config = config.setdefault("sphinx", {}).setdefault("config", {})
    sphinx_config["suppress_warnings"] = [
        *sphinx_config.get("suppress_warnings", []),
        *PARTIAL_SUPPRESSED,
    ]
    return config


def render_html(book: Path = BOOK, toc: Path | None = None, config: Path | None = None) -> Path:
    """Render the executed book to ``<book>/_build/html`` (execution is off in ``_config.yml``),
    with MathJax copied in; ``toc`` and ``config`` replace ``<book>/_toc.yml`` and
    ``<book>/_config.yml``. Returns the HTML folder."""
    copy_mathjax(book)
    html = book / "_build" / "html"
    shutil.rmtree(html, ignore_errors=True)  # no page of an earlier build survives
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(jupyter_book), "build", str(book), "--warningiserror", "--nitpick", "--quiet"]
    cmd += ["--toc", str(toc)] if toc else []
    cmd += ["--config", str(config)] if config else []
    subprocess.run(cmd, check=True)
    return html


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
    parser.add_argument(
        "--jobs",
        type=int,
        default=int(os.environ.get("BACKDOORBOOK_JOBS", "1")),
        help="chapters executed at a time, each on one core of its own (default 1: one chapter "
        "at a time on every core; $BACKDOORBOOK_JOBS)",
    )
    parser.add_argument(
        "--html",
        action="store_true",
        help="with --chapters: render a book of just these chapters (scorecard and execution "
        "report from their records)",
    )
    parser.add_argument(
        "--notebooks",
        type=Path,
        default=None,
        help="folder of the chapter sources (default: notebooks/)",
    )
    parser.add_argument(
        "--install-mathjax",
        action="store_true",
        help=f"install MathJax {MATHJAX_VERSION} from npm into {MATHJAX_HOME} and exit",
    )
    args = parser.parse_args(argv)
    if args.install_mathjax:
        try:
            print(f"[book] MathJax {MATHJAX_VERSION} in {install_mathjax()}", flush=True)
        except BuildError as err:
            print(f"[book] {err}", file=sys.stderr)
            return 1
        return 0
    if args.html and not args.chapters:
        parser.error(
            "--html renders a partial book: give --chapters (a whole build renders anyway)"
        )
    if args.notebooks:
        global NOTEBOOKS
        NOTEBOOKS = args.notebooks.resolve()

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
    if not args.chapters or args.html:  # fail before hours of execution, not after
        try:
            copy_mathjax()
        except BuildError as err:
            print(f"[book] BUILD FAILED: {err}", file=sys.stderr)
            return 1
    try:
        log = execute_chapters(
            stems,
            args.profile,
            args.seed,
            GENERATED / "chapters",
            GENERATED / "results",
            jobs=args.jobs,
            notebooks=NOTEBOOKS,
        )
        if not args.chapters or args.html:
            write_report_pages(log)
    except (ChapterFailed, ValueError) as err:
        print(f"[book] BUILD FAILED: {err}", file=sys.stderr)
        return 1
    if args.chapters and not args.html:
        print(f"[book] executed notebooks in {GENERATED / 'chapters'}", flush=True)
        return 0
    toc = config = None
    if args.chapters:
        toc, config = GENERATED / "_toc.partial.yml", GENERATED / "_config.partial.yml"
        toc.write_text(yaml.safe_dump(partial_toc(stems), sort_keys=False))
        config.write_text(yaml.safe_dump(partial_config(), sort_keys=False))
    html = render_html(toc=toc, config=config)
    print(f"[book] HTML in {html}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
