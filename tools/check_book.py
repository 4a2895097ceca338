"""Check the rendered book in a headless browser.

After the book is built (``python tools/build_book.py``), this loads every page of
``book/_build/html`` that matters in headless Chromium, saves a full-page screenshot of it
in ``book/_build/screenshots/``, and fails when

- a page is missing;
- a page shows an error output (a Jupyter error/traceback as myst-nb renders it, a
  docutils error message, or the text "Traceback (most recent call last)");
- an output shows a warning (``UserWarning: ...``, a logging ``WARNING``) or a progress
  bar (tqdm's ``42%|####      | 42/100 [00:01<00:02, 30.1it/s]``);
- math is left as raw TeX (``\\(x\\)``, ``$$ ... $$``, ``$x$``, ``\\frac{..}``) in the text
  of the rendered page, or MathJax reports a TeX error;
- the page loads anything from the network (scripts, styles, images, fonts): the book
  must work offline, MathJax included;
- an image is broken: a local file that is missing, empty or not an image, or a
  ``data:`` URI that does not decode to an image;
- an element sticks out of the text column (or is cut off at its edge) without being
  inside a block that scrolls sideways (wide tables and equations may scroll), a code
  block or output has lines wider than the block (code lines must wrap), or the page
  itself scrolls sideways;
- a chapter page offers no download of its executed notebook (``.ipynb``);
- the scorecard has no table row of claims.

Usage::

    python tools/check_book.py [--html book/_build/html] [--screenshots DIR]

Each page is loaded twice. The first load is of a copy of the page, beside it, with a
small script appended (:data:`PROBE_JS`): once MathJax has typeset and the fonts have
loaded, it measures the page (its height, what sticks out of the text column) and writes
the result into the DOM, which Chromium then dumps. The second load takes the screenshot
with a window as tall as the page (``--screenshot`` captures the window only).

The DOM analysis (:func:`analyze_page`) is separate from the browser call
(:func:`render`) so that it can be tested without a browser. Only the standard library
and the library's :mod:`backdoorbook.book.output_text` are required (Pillow, when installed,
decodes raster images fully). That module's patterns for warnings and progress bars are the
ones the book build applies to the executed notebooks.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import fnmatch
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
from backdoorbook.book.output_text import excerpt, text_problems  # noqa: E402

DEFAULT_HTML = REPO / "book" / "_build" / "html"
DEFAULT_CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
INSTALL_HINT = "install Debian's chromium: make browser (apt-get install -y chromium)"

INTRO = "intro.html"
SCORECARD = "generated/scorecard.html"
REQUIRED_PAGES = (
    INTRO,
    "generated/chapters/00_data.html",
    SCORECARD,
    "generated/execution_report.html",
)
OPTIONAL_PAGES = ("notation.html",)
CHAPTER_GLOB = "generated/chapters/*.html"

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Docker-style containers often have a 64 MB /dev/shm, too small for Chromium.
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    # Run the page's timers (MathJax typesetting, font loading) before dumping or capturing;
    # virtual time runs as fast as the page allows, so this costs no real time when idle.
    "--virtual-time-budget=30000",
)
WINDOW_WIDTH = 1280
PROBE_HEIGHT = 1800  # window height of the measuring load
MAX_SCREENSHOT_HEIGHT = 60000  # pixels; taller pages are captured down to here
PROBE_ID = "check-book-probe"

# --------------------------------------------------------------------------- text patterns

TRACEBACK_TEXT = re.compile(r"Traceback\s*\(most\s+recent\s+call\s+last\)")
#: TeX that MathJax should have replaced: delimiters, a ``$...$`` pair, common commands.
RAW_TEX = re.compile(
    r"\\[()\[\]]|\$\$|(?<![\w$\\])\$[^\s$](?:[^$\n]{0,300}?[^\s$\\])?\$(?![\w$])"
    r"|\\(?:begin|end|frac|dfrac|mathrm|mathbb|mathcal|mathbf|text|operatorname|sum|prod|int"
    r"|infty|epsilon|varepsilon|alpha|beta|gamma|delta|lambda|sigma|theta|mu|rho|leq?|geq?"
    r"|neq?|in|cdot|cdots|dots|ldots|times|odot|hat|tilde|bar|sqrt|log|exp|max|min|arg|left"
    r"|right|big|Big|qquad|quad)(?![a-zA-Z])"
    r"|\\[a-zA-Z]+\{"
)


# --------------------------------------------------------------------------- DOM analysis

_VOID = {
    "area",
    "base",
    "br",
    "col",
    "embed",
    "hr",
    "img",
    "input",
    "link",
    "meta",
    "param",
    "source",
    "track",
    "wbr",
}
# Text inside these is code, output or MathJax's own markup, not prose that could hold TeX.
_NOT_PROSE_TAGS = {"pre", "code", "kbd", "samp", "textarea", "svg", "math"}
_NOT_PROSE_CLASSES = {"highlight", "cell_output", "output"}
_RESOURCE_ATTRS = {
    "script": "src",
    "img": "src",
    "iframe": "src",
    "source": "src",
    "video": "src",
    "audio": "src",
    "embed": "src",
    "object": "data",
}
_RESOURCE_LINK_RELS = {"stylesheet", "preload", "modulepreload", "icon", "prefetch", "manifest"}


class _PageParser(HTMLParser):
    """Collects what the checks need from one HTML document in a single pass."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []  # all visible text
        self.prose: list[str] = []  # visible text outside code, outputs and math markup
        self.error_elements: list[str] = []  # class attributes of error outputs
        self.outputs: list[list] = []  # [kind, text parts] of every cell output
        self.images: list[str] = []  # src of every <img>
        self.remote: list[str] = []  # network URLs the page loads
        self.links: list[str] = []  # href of every <a>
        self.math_errors: list[str] = []  # MathJax <mjx-merror> messages
        self.probe: str | None = None  # the layout probe's JSON, when present
        self.body_rows = 0  # <tr> inside a <tbody> holding at least one <td>
        self._stack: list[tuple[str, bool, bool, list | None, bool]] = []
        self._tbody = 0
        self._row_has_td = False

    # each stack entry: (tag, hidden text, not prose, output record or None, is probe)
    def _state(self):
        hidden = any(e[1] for e in self._stack)
        not_prose = any(e[2] for e in self._stack)
        output = next((e[3] for e in reversed(self._stack) if e[3] is not None), None)
        probe = any(e[4] for e in self._stack)
        return hidden, not_prose, output, probe

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        classes = set((attrs.get("class") or "").split())
        if tag == "img":
            self.images.append(attrs.get("src") or "")
        elif tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])
        elif tag == "tbody":
            self._tbody += 1
        elif tag == "tr" and self._tbody:
            self._row_has_td = False
        elif tag == "td" and self._tbody and not self._row_has_td:
            self._row_has_td = True
            self.body_rows += 1
        elif tag == "mjx-merror":
            self.math_errors.append(attrs.get("data-mjx-error") or "TeX error")
        url = attrs.get(_RESOURCE_ATTRS.get(tag, ""), "") or ""
        if tag == "link" and set((attrs.get("rel") or "").lower().split()) & _RESOURCE_LINK_RELS:
            url = attrs.get("href") or ""
        if urlsplit(url).scheme in ("http", "https") or url.startswith("//"):
            self.remote.append(url)
        if ("output" in classes and classes & {"traceback", "error"}) or (
            "system-message" in classes
        ):
            self.error_elements.append(" ".join(sorted(classes)))
        if tag in _VOID:
            return
        output = None
        if "output" in classes:
            kind = next(
                (k for k in ("stderr", "stream", "text_plain", "text_html") if k in classes),
                "output",
            )
            output = [kind, []]
            self.outputs.append(output)
        self._stack.append(
            (
                tag,
                tag in ("script", "style", "template", "noscript"),
                tag in _NOT_PROSE_TAGS
                or tag.startswith("mjx-")
                or bool(classes & _NOT_PROSE_CLASSES),
                output,
                tag == "script" and attrs.get("id") == PROBE_ID,
            )
        )

    def handle_endtag(self, tag):
        if tag == "tbody" and self._tbody:
            self._tbody -= 1
        for i in range(len(self._stack) - 1, -1, -1):  # close up to the matching open tag
            if self._stack[i][0] == tag:
                del self._stack[i:]
                break

    def handle_data(self, data):
        hidden, not_prose, output, probe = self._state()
        if probe:
            self.probe = (self.probe or "") + data
        if hidden:
            return
        self.text.append(data)
        if not not_prose:
            self.prose.append(data)
        if output is not None:
            output[1].append(data)


def image_bytes_problem(data: bytes) -> str | None:
    """Return why ``data`` is not a displayable image, or None when it is one."""
    if not data:
        return "zero-size image"
    head = data[:1024].lstrip()
    if head.startswith(b"<?xml") or b"<svg" in head:
        return None if b"</svg>" in data else "truncated SVG"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        if (
            len(data) < 24
            or int.from_bytes(data[16:20], "big") == 0
            or int.from_bytes(data[20:24], "big") == 0
        ):
            return "PNG with zero size"
    elif not (
        data.startswith(b"\xff\xd8")
        or data.startswith((b"GIF87a", b"GIF89a"))
        or (data.startswith(b"RIFF") and data[8:12] == b"WEBP")
    ):
        return "not a PNG, JPEG, GIF, WebP or SVG image"
    try:  # full decode when Pillow is available (it is a project dependency)
        from io import BytesIO

        from PIL import Image
    except ImportError:
        return None
    try:
        with Image.open(BytesIO(data)) as im:
            im.load()
            if im.width == 0 or im.height == 0:
                return "zero-size image"
    except Exception as exc:  # noqa: BLE001 - any decoding failure means broken
        return f"undecodable image ({type(exc).__name__}: {exc})"
    return None


def _local_target(src: str, page: Path) -> Path | None:
    """The local file a relative or ``file:`` URL of ``page`` points at (None for others)."""
    parts = urlsplit(src)
    if parts.scheme not in ("", "file") or src.startswith("//"):
        return None
    path = Path(unquote(parts.path))
    return path if parts.scheme == "file" else page.parent / path


def image_problem(src: str, page: Path) -> str | None:
    """Check one ``<img src>`` of ``page``; remote images are reported elsewhere."""
    short = src if len(src) <= 60 else src[:57] + "..."
    if not src:
        return "<img> without src"
    if src.startswith("data:"):
        meta, sep, payload = src[5:].partition(",")
        if not sep:
            return f"malformed data URI {short!r}"
        try:
            data = (
                base64.b64decode(payload, validate=True)
                if meta.endswith(";base64")
                else unquote(payload).encode()
            )
        except (binascii.Error, ValueError):
            return f"undecodable data URI {short!r}"
        why = image_bytes_problem(data)
        return f"broken data URI image ({why})" if why else None
    path = _local_target(src, page)
    if path is None:
        return None
    if not path.is_file():
        return f"missing image {src!r}"
    why = image_bytes_problem(path.read_bytes())
    return f"broken image {src!r} ({why})" if why else None


def notebook_download_problem(links: list[str], page: Path) -> str | None:
    """None when one of ``links`` is a local ``.ipynb`` notebook that exists and parses."""
    targets = [
        target
        for href in links
        if urlsplit(href).path.endswith(".ipynb") and (target := _local_target(href, page))
    ]
    for target in targets:
        try:
            if "cells" in json.loads(target.read_text(encoding="utf-8")):
                return None
        except (OSError, ValueError):
            continue
    if targets:
        return f"the notebook download link points at no readable notebook ({targets[0]})"
    return "offers no download of its executed notebook (no link to a .ipynb file)"


def probe_problems(probe: dict) -> list[str]:
    """Problems reported by :data:`PROBE_JS` (layout measured in the browser)."""
    problems = []
    if str(probe.get("mathjax", "")).startswith("error"):
        problems.append(f"MathJax failed: {probe['mathjax']}")
    column = probe.get("column") or {}
    for item in probe.get("overflow", []):
        problems.append(
            f"<{item['element']}> {item.get('how', 'sticks out of the text column')} "
            f"({item['width']} px wide, {item['excess']} px too wide; column "
            f"{column.get('width')} px): {item['text']!r}"
        )
    more = probe.get("overflow_count", 0) - len(probe.get("overflow", []))
    if more > 0:
        problems.append(f"... and {more} more element(s) too wide for the text column")
    if probe.get("page_width", 0) > probe.get("viewport_width", 0) + 1:
        problems.append(
            f"the page scrolls sideways ({probe['page_width']} px wide in a "
            f"{probe['viewport_width']} px window)"
        )
    return problems


def analyze_page(
    html: str,
    page: Path,
    *,
    scorecard: bool = False,
    chapter: bool = False,
    probed: bool = False,
) -> list[str]:
    """Return the problems found in the (rendered) HTML of ``page``; [] means OK.

    ``scorecard``: the page must have claim rows; ``chapter``: it must offer its notebook for
    download; ``probed``: the DOM comes from :func:`render` and must carry the probe's result.
    """
    parser = _PageParser()
    parser.feed(html)
    parser.close()
    problems = []
    if parser.error_elements:
        problems.append(
            f"{len(parser.error_elements)} error output(s) (class {parser.error_elements[0]!r})"
        )
    elif TRACEBACK_TEXT.search(" ".join("".join(parser.text).split())):
        problems.append("shows a traceback ('Traceback (most recent call last)')")
    for kind, parts in parser.outputs:
        for p in text_problems("".join(parts)):
            problems.append(f"{'a stderr' if kind == 'stderr' else 'an'} output shows {p}")
    prose = "".join(parser.prose)
    if m := RAW_TEX.search(prose):
        problems.append(f"raw TeX in the text (math not rendered): {excerpt(prose, m)!r}")
    if parser.math_errors:
        problems.append(f"MathJax could not typeset: {parser.math_errors[0]!r}")
    if parser.remote:
        problems.append(
            f"loads {len(parser.remote)} resource(s) from the network, e.g. {parser.remote[0]!r}"
            " (the book must work offline)"
        )
    problems += [p for src in parser.images if (p := image_problem(src, page))]
    if chapter and (p := notebook_download_problem(parser.links, page)):
        problems.append(p)
    if scorecard and parser.body_rows == 0:
        problems.append("empty scorecard: no claim rows in any table body")
    if probed:
        try:
            probe = json.loads(parser.probe or "")
        except ValueError:
            problems.append("the layout probe did not report (page still loading or typesetting)")
        else:
            problems += probe_problems(probe)
    return problems


# --------------------------------------------------------------------------- browser

#: Appended to a copy of each page. After the load event, MathJax's typesetting and the
#: fonts, it measures the page and writes JSON into ``<script id=PROBE_ID>``:
#: ``height`` (document height), ``mathjax`` (absent/done/error: ...), ``column`` (the text
#: column's box), ``overflow`` (the outermost elements that stick out of the column, or are
#: cut off at its edge, without a block that scrolls sideways around them, and ``<pre>``
#: blocks whose lines are wider than the block), ``page_width`` and ``viewport_width``.
PROBE_JS = r"""
(() => {
  const COLUMN = ["article.bd-article", "main", "body"];
  const EXEMPT = ".margin, .sidebar, .full-width, aside, .headerlink, .visually-hidden, "
    + ".sr-only, mjx-assistive-mml";
  const describe = (el) => {
    const cls = (el.getAttribute("class") || "").trim().split(/\s+/).filter(Boolean);
    return el.tagName.toLowerCase() + (cls.length ? "." + cls.slice(0, 3).join(".") : "");
  };
  const text = (el) => (el.textContent || "").replace(/\s+/g, " ").trim().slice(0, 80);
  async function probe() {
    const out = { mathjax: "absent" };
    try {
      if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
        await MathJax.startup.promise;
        out.mathjax = "done";
      }
    } catch (e) {
      out.mathjax = "error: " + e;
    }
    if (document.fonts && document.fonts.ready) await document.fonts.ready;
    const col = COLUMN.map((s) => document.querySelector(s)).find(Boolean);
    const c = col.getBoundingClientRect();
    out.column = { element: describe(col), left: Math.round(c.left), width: Math.round(c.width) };
    const over = [];
    let count = 0;
    const report = (el, how, width, excess) => {
      if (over.some((o) => o.node.contains(el))) return;
      count += 1;
      if (over.length < 10) over.push({
        node: el, element: describe(el), how, width: Math.round(width),
        excess: Math.round(excess), text: text(el),
      });
    };
    for (const el of col.querySelectorAll("*")) {
      if (el.closest(EXEMPT)) continue;
      const s = getComputedStyle(el);
      if (s.display === "none" || s.visibility === "hidden" || s.position === "fixed") continue;
      const r = el.getBoundingClientRect();
      if (r.width === 0 || r.height === 0) continue;
      // A code block or an output whose lines are wider than the block (they scroll or are
      // clipped, so their end is hidden): code lines must wrap within the column.
      if (el.tagName === "PRE" && el.scrollWidth > el.clientWidth + 1) {
        const extra = el.scrollWidth - el.clientWidth;
        report(el, "has lines wider than its block", el.scrollWidth, extra);
        continue;
      }
      const excess = Math.max(r.right - c.right, c.left - r.left);
      if (excess <= 1) continue;
      // Inside a block that scrolls sideways (wide tables, wide equations): fine, as long as
      // that block fits, which is checked when the loop reaches it.
      let a = el.parentElement, how = "sticks out of the text column";
      while (a && a !== col) {
        const ox = getComputedStyle(a).overflowX;
        if (ox === "auto" || ox === "scroll") { how = null; break; }
        if (ox === "hidden" || ox === "clip") { how = "is cut off at the column's edge"; break; }
        a = a.parentElement;
      }
      if (how) report(el, how, r.width, excess);
    }
    out.overflow = over.map(({ node, ...rest }) => rest);
    out.overflow_count = count;
    const root = document.documentElement;
    out.page_width = root.scrollWidth;
    out.viewport_width = window.innerWidth;
    out.height = Math.ceil(Math.max(root.scrollHeight, document.body.scrollHeight));
    const tag = document.createElement("script");
    tag.type = "application/json";
    tag.id = "%(probe_id)s";
    tag.textContent = JSON.stringify(out);
    document.body.appendChild(tag);
  }
  if (document.readyState === "complete") probe();
  else window.addEventListener("load", () => probe());
})();
""".replace("%(probe_id)s", PROBE_ID)


class RenderError(RuntimeError):
    pass


def _chromium(chromium: str, args: list[str], url: str, timeout: float) -> str:
    with tempfile.TemporaryDirectory(prefix="check_book_chromium_") as profile:
        cmd = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args, url]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise RenderError(f"chromium timed out after {timeout:.0f} s") from None
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
        raise RenderError(f"chromium exited with {proc.returncode}:\n{tail}")
    return proc.stdout


def with_probe(html: str) -> str:
    """``html`` with :data:`PROBE_JS` appended to its body."""
    script = f"<script>{PROBE_JS}</script>"
    at = html.lower().rfind("</body>")
    return html[:at] + script + html[at:] if at >= 0 else html + script


def probe_height(dom: str) -> int | None:
    """The document height that the probe measured, or None when it did not report."""
    parser = _PageParser()
    parser.feed(dom)
    parser.close()
    try:
        return int(json.loads(parser.probe or "")["height"])
    except (ValueError, KeyError, TypeError):
        return None


def render(
    page: Path, screenshot: Path, *, chromium: str = DEFAULT_CHROMIUM, timeout: float = 180
) -> str:
    """Screenshot the whole of ``page`` to ``screenshot``; return the probed, rendered DOM.

    The probe runs in a copy of the page written beside it (so that relative links, styles,
    scripts and fonts resolve exactly as for the page) and removed afterwards.
    """
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    screenshot.unlink(missing_ok=True)
    probe_page = page.with_name(f".check_book_probe.{page.name}")
    try:
        probe_page.write_text(with_probe(page.read_text(encoding="utf-8")), encoding="utf-8")
        dom = _chromium(
            chromium,
            [f"--window-size={WINDOW_WIDTH},{PROBE_HEIGHT}", "--dump-dom"],
            probe_page.resolve().as_uri(),
            timeout,
        )
    finally:
        probe_page.unlink(missing_ok=True)
    if "<body" not in dom:
        raise RenderError("chromium returned an empty DOM")
    height = min(max(probe_height(dom) or PROBE_HEIGHT, 200), MAX_SCREENSHOT_HEIGHT)
    _chromium(
        chromium,
        [f"--window-size={WINDOW_WIDTH},{height}", f"--screenshot={screenshot}"],
        page.resolve().as_uri(),
        timeout,
    )
    if not screenshot.is_file() or screenshot.stat().st_size == 0:
        raise RenderError("chromium wrote no screenshot")
    return dom


# --------------------------------------------------------------------------- driver


def pages_to_check(html_dir: Path) -> tuple[list[str], list[str]]:
    """Return (pages that exist, required pages that are missing), relative to html_dir."""
    wanted = list(REQUIRED_PAGES) + [p for p in OPTIONAL_PAGES if (html_dir / p).is_file()]
    wanted += sorted(
        rel
        for p in html_dir.glob(CHAPTER_GLOB)
        if not (rel := p.relative_to(html_dir).as_posix()).rpartition("/")[2].startswith(".")
    )
    wanted = list(dict.fromkeys(wanted))
    missing = [p for p in wanted if not (html_dir / p).is_file()]
    return [p for p in wanted if p not in missing], missing


def screenshot_name(rel: str) -> str:
    return rel.removesuffix(".html").replace("/", "__") + ".png"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--html",
        type=Path,
        default=DEFAULT_HTML,
        help="built HTML folder (default: book/_build/html)",
    )
    ap.add_argument(
        "--screenshots",
        type=Path,
        default=None,
        help="where to save screenshots (default: <html>/../screenshots)",
    )
    ap.add_argument(
        "--chromium",
        default=DEFAULT_CHROMIUM,
        help="browser binary (default: $CHROMIUM or /usr/bin/chromium)",
    )
    ap.add_argument(
        "--jobs",
        type=int,
        default=min(4, os.cpu_count() or 1),
        help="pages loaded at once (default: min(4, CPU count))",
    )
    args = ap.parse_args(argv)

    html_dir: Path = args.html
    shots: Path = args.screenshots or html_dir.parent / "screenshots"
    if not Path(args.chromium).is_file():
        print(f"error: no browser at {args.chromium}; {INSTALL_HINT}", file=sys.stderr)
        return 2
    if not html_dir.is_dir():
        print(
            f"error: {html_dir} does not exist; build the book first (python tools/build_book.py)",
            file=sys.stderr,
        )
        return 2

    start = time.monotonic()
    present, missing = pages_to_check(html_dir)
    failed = len(missing)
    for rel in missing:
        print(f"FAIL {rel}: page is missing")

    def check(rel: str) -> list[str]:
        page = html_dir / rel
        try:
            dom = render(page, shots / screenshot_name(rel), chromium=args.chromium)
        except RenderError as exc:
            return [f"could not render: {exc}"]
        return analyze_page(
            dom,
            page,
            scorecard=rel == SCORECARD,
            chapter=fnmatch.fnmatch(rel, CHAPTER_GLOB),
            probed=True,
        )

    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:  # one Chromium per page
        for rel, problems in zip(present, pool.map(check, present)):
            failed += bool(problems)
            print(
                f"{'FAIL' if problems else 'OK  '} {rel}"
                + "".join(f"\n     - {p}" for p in problems),
                flush=True,
            )
    total = len(present) + len(missing)
    print(
        f"{total} page(s) checked in {time.monotonic() - start:.1f} s: "
        f"{total - failed} OK, {failed} with problems; screenshots in {shots}"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
