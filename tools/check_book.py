"""Check the rendered book in a headless browser.

After ``jupyter-book build book/``, this loads each important page of
``book/_build/html`` in headless Chromium, saves a screenshot of it, and fails when

- a page is missing;
- a page shows an error output (a Jupyter error/traceback as myst-nb renders it, a
  docutils error message, or the text "Traceback (most recent call last)");
  stderr output such as warnings is *not* an error;
- an image is broken: a local file that is missing, empty or not an image, or a
  ``data:`` URI that does not decode to an image;
- the scorecard has no table row of claims.

Usage::

    python tools/check_book.py [--html book/_build/html] [--screenshots DIR]

The DOM analysis (:func:`analyze_page`) is separate from the browser call
(:func:`render`) so that it can be tested without a browser. Only the standard
library is required; Pillow, when installed, is used to decode raster images fully.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import os
import re
import subprocess
import sys
import tempfile
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

REPO = Path(__file__).resolve().parents[1]
DEFAULT_HTML = REPO / "book" / "_build" / "html"
DEFAULT_CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
INSTALL_HINT = "install Debian's chromium: apt-get update && apt-get install -y chromium"

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
    "--window-size=1280,1800",
)
TRACEBACK_TEXT = re.compile(r"Traceback\s*\(most\s+recent\s+call\s+last\)")


# --------------------------------------------------------------------------- DOM analysis


class _PageParser(HTMLParser):
    """Collects what the checks need from one HTML document in a single pass."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.error_elements: list[str] = []  # class attributes of error outputs
        self.images: list[str] = []  # src of every <img>
        self.body_rows = 0  # <tr> inside a <tbody> holding at least one <td>
        self._skip = 0  # depth inside <script>/<style>
        self._tbody = 0
        self._row_has_td = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        classes = set((attrs.get("class") or "").split())
        if tag in ("script", "style"):
            self._skip += 1
        elif tag == "img":
            self.images.append(attrs.get("src") or "")
        elif tag == "tbody":
            self._tbody += 1
        elif tag == "tr" and self._tbody:
            self._row_has_td = False
        elif tag == "td" and self._tbody and not self._row_has_td:
            self._row_has_td = True
            self.body_rows += 1
        if (
            "output" in classes and classes & {"traceback", "error"}
        ) or "system-message" in classes:
            self.error_elements.append(" ".join(sorted(classes)))

    def handle_endtag(self, tag):
        if tag in ("script", "style") and self._skip:
            self._skip -= 1
        elif tag == "tbody" and self._tbody:
            self._tbody -= 1

    def handle_data(self, data):
        if not self._skip:
            self.text.append(data)


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


def image_problem(src: str, page: Path) -> str | None:
    """Check one ``<img src>`` of ``page``; remote images are not checked."""
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
    parts = urlsplit(src)
    if parts.scheme in ("http", "https"):
        return None
    if parts.scheme not in ("", "file"):
        return None
    path = Path(unquote(parts.path))
    path = path if parts.scheme == "file" else (page.parent / path)
    if not path.is_file():
        return f"missing image {src!r}"
    why = image_bytes_problem(path.read_bytes())
    return f"broken image {src!r} ({why})" if why else None


def analyze_page(html: str, page: Path, *, scorecard: bool = False) -> list[str]:
    """Return the problems found in the (rendered) HTML of ``page``; [] means OK."""
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
    problems += [p for src in parser.images if (p := image_problem(src, page))]
    if scorecard and parser.body_rows == 0:
        problems.append("empty scorecard: no claim rows in any table body")
    return problems


# --------------------------------------------------------------------------- browser


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


def render(
    page: Path, screenshot: Path, *, chromium: str = DEFAULT_CHROMIUM, timeout: float = 120
) -> str:
    """Screenshot ``page`` to ``screenshot`` and return its rendered DOM."""
    url = page.resolve().as_uri()
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    screenshot.unlink(missing_ok=True)
    _chromium(chromium, [f"--screenshot={screenshot}"], url, timeout)
    if not screenshot.is_file() or screenshot.stat().st_size == 0:
        raise RenderError("chromium wrote no screenshot")
    dom = _chromium(chromium, ["--dump-dom"], url, timeout)
    if "<body" not in dom:
        raise RenderError("chromium returned an empty DOM")
    return dom


# --------------------------------------------------------------------------- driver


def pages_to_check(html_dir: Path) -> tuple[list[str], list[str]]:
    """Return (pages that exist, required pages that are missing), relative to html_dir."""
    wanted = list(REQUIRED_PAGES) + [p for p in OPTIONAL_PAGES if (html_dir / p).is_file()]
    wanted += sorted(p.relative_to(html_dir).as_posix() for p in html_dir.glob(CHAPTER_GLOB))
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
    args = ap.parse_args(argv)

    html_dir: Path = args.html
    shots: Path = args.screenshots or html_dir.parent / "screenshots"
    if not Path(args.chromium).is_file():
        print(f"error: no browser at {args.chromium}; {INSTALL_HINT}", file=sys.stderr)
        return 2
    if not html_dir.is_dir():
        print(
            f"error: {html_dir} does not exist; build the book first (jupyter-book build book/)",
            file=sys.stderr,
        )
        return 2

    start = time.monotonic()
    present, missing = pages_to_check(html_dir)
    failed = len(missing)
    for rel in missing:
        print(f"FAIL {rel}: page is missing")
    for rel in present:
        page = html_dir / rel
        try:
            dom = render(page, shots / screenshot_name(rel), chromium=args.chromium)
            problems = analyze_page(dom, page, scorecard=rel == SCORECARD)
        except RenderError as exc:
            problems = [f"could not render: {exc}"]
        failed += bool(problems)
        print(
            f"{'FAIL' if problems else 'OK  '} {rel}" + "".join(f"\n     - {p}" for p in problems)
        )
    total = len(present) + len(missing)
    print(
        f"{total} page(s) checked in {time.monotonic() - start:.1f} s: "
        f"{total - failed} OK, {failed} with problems; screenshots in {shots}"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
