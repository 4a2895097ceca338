"""Tests for tools/check_book.py: DOM analysis without a browser, the driver with one.

The browser tests need Debian's chromium; `make test` installs it first (`make browser`), so
they fail, rather than skip, where it is missing."""

from __future__ import annotations

import base64
import importlib.util
import json
import struct
import zlib
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[1] / "tools" / "check_book.py"
_spec = importlib.util.spec_from_file_location("check_book", _PATH)
cb = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cb)

CHROMIUM = Path(cb.DEFAULT_CHROMIUM)


@pytest.fixture
def chromium() -> str:
    assert CHROMIUM.is_file(), f"no browser at {CHROMIUM}: {cb.INSTALL_HINT}"
    return str(CHROMIUM)


def png_bytes(width: int = 2, height: int = 2) -> bytes:
    """A valid RGB PNG, built with the standard library."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    raw = b"".join(b"\x00" + b"\x80\x40\x20" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return path.name


def data_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def page(body: str) -> str:
    return f"<html><head><title>t</title></head><body><main>{body}</main></body></html>"


NOTEBOOK = '{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}'
DOWNLOAD = '<a href="../../_sources/generated/chapters/{stem}.ipynb">.ipynb</a>'
CHAPTER_BODY = (
    "<h1>Data</h1>"
    + DOWNLOAD.format(stem="00_data")
    + '<div class="output stderr"><pre>loading cifar10 from the mirror</pre></div>'
    '<img src="../../_images/fig.png">'
    f'<img src="{data_uri(png_bytes())}">'
    # rendered math: MathJax's markup, and its assistive MathML, hold no TeX
    '<p>with <span class="math"><mjx-container class="MathJax"><mjx-math><mjx-mi>'
    "</mjx-mi></mjx-math><mjx-assistive-mml><math><mi>x</mi></math></mjx-assistive-mml>"
    "</mjx-container></span> and <code>$HOME</code>, <code>\\(raw\\)</code></p>"
    "<pre>echo $PATH $HOME \\frac{a}{b}</pre>"
)
SCORECARD_TABLE = """<table><thead><tr><th>claim</th><th>verdict</th></tr></thead>
<tbody>{rows}</tbody></table>"""
CLAIM_ROW = "<tr><td>ASR above 80 %</td><td>holds</td></tr>"


@pytest.fixture
def html_dir(tmp_path: Path) -> Path:
    """A tiny book: every required page exists and is fine."""
    root = tmp_path / "html"
    (root / "_images").mkdir(parents=True)
    (root / "_images" / "fig.png").write_bytes(png_bytes())
    (root / "generated" / "chapters").mkdir(parents=True)
    (root / "intro.html").write_text(page("<h1>Intro</h1><p>Welcome.</p>"))
    (root / "_sources" / "generated" / "chapters").mkdir(parents=True)
    (root / "_sources" / "generated" / "chapters" / "00_data.ipynb").write_text(NOTEBOOK)
    (root / "generated" / "chapters" / "00_data.html").write_text(page(CHAPTER_BODY))
    (root / "generated" / "scorecard.html").write_text(
        page("<h1>Scorecard</h1>" + SCORECARD_TABLE.format(rows=CLAIM_ROW))
    )
    (root / "generated" / "execution_report.html").write_text(page("<h1>Report</h1>"))
    return root


# --------------------------------------------------------------------------- DOM analysis


def test_good_pages_have_no_problems(html_dir: Path):
    for rel in cb.REQUIRED_PAGES:
        p = html_dir / rel
        chapter = rel.startswith("generated/chapters/")
        problems = cb.analyze_page(p.read_text(), p, scorecard=rel == cb.SCORECARD, chapter=chapter)
        assert problems == [], rel


@pytest.mark.parametrize(
    "body",
    [
        # myst-nb renders an error output as <div class="output traceback ...">
        '<div class="cell_output"><div class="output traceback highlight-ipythontb">'
        "<pre>ZeroDivisionError: division by zero</pre></div></div>",
        '<div class="output error"><pre>KeyError: 1</pre></div>',
        '<div class="system-message"><p>Unknown directive type "figur".</p></div>',
        # text split over spans, as Pygments highlights it
        "<pre><span>Traceback</span> <span>(</span><span>most</span> recent call "
        "<span>last</span><span>)</span>\nValueError: bad</pre>",
    ],
)
def test_error_output_is_reported(tmp_path: Path, body: str):
    problems = cb.analyze_page(page(body), tmp_path / "p.html")
    assert len(problems) == 1 and ("error output" in problems[0] or "traceback" in problems[0])


def test_plain_stderr_and_scripts_are_not_errors(tmp_path: Path):
    body = (
        '<div class="output stderr"><pre>loading 10000 images</pre></div>'
        '<script>var s = "Traceback (most recent call last) UserWarning: x $a$";</script>'
        "<p>A warning about warnings: UserWarning is a class. 42%| is text here.</p>"
    )
    assert cb.analyze_page(page(body), tmp_path / "p.html") == []


@pytest.mark.parametrize(
    "output, expected",
    [
        (
            '<div class="output stderr"><pre>/home/u/.venv/lib/python3.11/site-packages/tqdm/'
            "auto.py:21: TqdmWarning: IProgress not found.</pre></div>",
            "a stderr output shows a warning: '/home/u/.venv/lib/python3.11/site-packages/tqdm/"
            "auto.py:21: TqdmWarning: IProgress not found.'",
        ),
        (
            '<div class="output stderr"><pre>x.py:3: UserWarning: slow\n  warnings.warn("slow")'
            "</pre></div>",
            "UserWarning: slow",
        ),
        ('<div class="output stream"><pre>WARNING:root:low memory</pre></div>', "a warning"),
        (
            '<div class="output stderr"><pre>decoding gtsrb/test:   0%|          | 0/12630 '
            "[00:00&lt;?, ?it/s]</pre></div>",
            "a stderr output shows a progress bar: 'decoding gtsrb/test:   0%|",
        ),
        (
            '<div class="output stream"><pre>train 100/100 [00:03<00:00, 30.2it/s]</pre></div>',
            "bar",
        ),
    ],
)
def test_warnings_and_progress_bars_in_outputs_are_reported(tmp_path, output, expected):
    problems = cb.analyze_page(page(output), tmp_path / "p.html")
    assert len(problems) == 1 and expected in problems[0], problems


@pytest.mark.parametrize(
    "body",
    [
        '<p>an image <span class="math notranslate nohighlight">\\(x \\in [0,1]\\)</span></p>',
        '<div class="math notranslate nohighlight">\\[\\mathrm{ASR} = 1\\]</div>',
        "<p>$$ a = b $$</p>",
        "<p>the budget $\\epsilon$ is small</p>",
        "<p>the budget $x_1$ is small</p>",
        "<p>ratio \\frac{a}{b}</p>",
        "<p>split <em>$a</em> + <em>b$</em></p>",
    ],
)
def test_raw_tex_is_reported(tmp_path: Path, body: str):
    problems = cb.analyze_page(page(body), tmp_path / "p.html")
    assert len(problems) == 1 and problems[0].startswith("raw TeX in the text"), problems


def test_mathjax_errors_are_reported(tmp_path: Path):
    body = '<mjx-container><mjx-merror data-mjx-error="Undefined control sequence \\foo">'
    body += "<mjx-mtext></mjx-mtext></mjx-merror></mjx-container>"
    problems = cb.analyze_page(page(body), tmp_path / "p.html")
    assert problems == ["MathJax could not typeset: 'Undefined control sequence \\\\foo'"]


@pytest.mark.parametrize(
    "body",
    [
        '<script src="https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js"></script>',
        '<link rel="stylesheet" href="//fonts.googleapis.com/css?family=Lato">',
        '<img src="https://example.org/x.png">',
    ],
)
def test_network_resources_are_reported(tmp_path: Path, body: str):
    problems = cb.analyze_page(page(body), tmp_path / "p.html")
    assert len(problems) == 1 and "from the network" in problems[0], problems


def test_links_to_the_web_are_not_resources(tmp_path: Path):
    body = '<a href="https://doi.org/10.1/x">paper</a><link rel="canonical" href="https://x.org">'
    assert cb.analyze_page(page(body), tmp_path / "p.html") == []


def test_chapter_without_notebook_download_is_reported(html_dir: Path):
    p = html_dir / "generated" / "chapters" / "00_data.html"
    no_link = page(CHAPTER_BODY.replace(DOWNLOAD.format(stem="00_data"), ""))
    assert cb.analyze_page(no_link, p, chapter=True) == [
        "offers no download of its executed notebook (no link to a .ipynb file)"
    ]
    (html_dir / "_sources" / "generated" / "chapters" / "00_data.ipynb").write_text("<html>")
    problems = cb.analyze_page(p.read_text(), p, chapter=True)
    assert len(problems) == 1 and "points at no readable notebook" in problems[0]
    assert cb.analyze_page(no_link, p) == [], "only chapter pages need the download"


def probe_script(**probe) -> str:
    probe = {
        "mathjax": "done",
        "column": {"width": 750},
        "overflow": [],
        "overflow_count": 0,
        "page_width": 1280,
        "viewport_width": 1280,
        "height": 3000,
        **probe,
    }
    return f'<script type="application/json" id="{cb.PROBE_ID}">{json.dumps(probe)}</script>'


def test_probe_results_are_reported(tmp_path: Path):
    wide = {
        "element": "div.wide",
        "how": "sticks out of the text column",
        "width": 1400,
        "excess": 650,
        "text": "a very wide thing",
    }
    probe = probe_script(overflow=[wide], overflow_count=3, page_width=1500)
    problems = cb.analyze_page(page("<p>x</p>" + probe), tmp_path / "p.html", probed=True)
    assert problems == [
        "<div.wide> sticks out of the text column (1400 px wide, 650 px too wide; column 750 px):"
        " 'a very wide thing'",
        "... and 2 more element(s) too wide for the text column",
        "the page scrolls sideways (1500 px wide in a 1280 px window)",
    ]
    assert cb.analyze_page(page(probe_script()), tmp_path / "p.html", probed=True) == []
    assert cb.probe_height(page(probe_script())) == 3000


def test_missing_probe_is_reported_for_rendered_pages(tmp_path: Path):
    problems = cb.analyze_page(page("<p>x</p>"), tmp_path / "p.html", probed=True)
    assert problems == ["the layout probe did not report (page still loading or typesetting)"]


@pytest.mark.parametrize(
    "make_src, expected",
    [
        (lambda d: "missing.png", "missing image"),
        (lambda d: write(d / "empty.png", b""), "zero-size"),
        (lambda d: write(d / "junk.png", b"not an image"), "broken image"),
        (lambda d: write(d / "cut.png", png_bytes()[:40]), "broken image"),
        (lambda d: "data:image/png;base64,@@@notbase64@@@", "undecodable data URI"),
        (lambda d: "data:image/png;base64,", "zero-size"),
        (lambda d: data_uri(png_bytes(0, 0)), "broken data URI"),
    ],
)
def test_broken_image_is_reported(tmp_path: Path, make_src, expected: str):
    src = make_src(tmp_path)
    problems = cb.analyze_page(page(f'<img src="{src}">'), tmp_path / "p.html")
    assert len(problems) == 1 and expected in problems[0], problems


def test_good_images_pass(tmp_path: Path):
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "a b.png").write_bytes(png_bytes())
    svg = "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg'%3E%3C/svg%3E"
    body = f'<img src="img/a%20b.png"><img src="{data_uri(png_bytes())}"><img src="{svg}">'
    assert cb.analyze_page(page(body), tmp_path / "p.html") == []


@pytest.mark.parametrize(
    "body",
    [
        "<p>No results yet.</p>",
        SCORECARD_TABLE.format(rows=""),
        # a header row alone is not a claim
        "<table><thead><tr><th>claim</th></tr></thead></table>",
    ],
)
def test_empty_scorecard_is_reported(tmp_path: Path, body: str):
    problems = cb.analyze_page(page(body), tmp_path / "scorecard.html", scorecard=True)
    assert problems == ["empty scorecard: no claim rows in any table body"]


def test_scorecard_rows_only_matter_on_the_scorecard(tmp_path: Path):
    assert cb.analyze_page(page("<p>text</p>"), tmp_path / "p.html") == []


# --------------------------------------------------------------------------- page discovery


def test_pages_to_check_finds_chapters_and_missing_pages(html_dir: Path):
    (html_dir / "generated" / "chapters" / "03_iba.html").write_text(page("<h1>IBA</h1>"))
    (html_dir / "generated" / "chapters" / ".check_book_probe.03_iba.html").write_text("left")
    (html_dir / "generated" / "execution_report.html").unlink()
    present, missing = cb.pages_to_check(html_dir)
    assert "generated/chapters/03_iba.html" in present
    assert missing == ["generated/execution_report.html"]
    assert cb.screenshot_name("generated/chapters/03_iba.html") == "generated__chapters__03_iba.png"


def test_missing_browser_gives_install_hint(html_dir: Path, tmp_path: Path, capsys):
    rc = cb.main(["--html", str(html_dir), "--chromium", str(tmp_path / "no-chromium")])
    assert rc == 2
    assert "make browser" in capsys.readouterr().err


# --------------------------------------------------------------------------- with the browser


def test_browser_run_passes_on_good_book(html_dir: Path, tmp_path: Path, capsys, chromium):
    shots = tmp_path / "shots"
    assert cb.main(["--html", str(html_dir), "--screenshots", str(shots)]) == 0
    out = capsys.readouterr().out
    assert "4 page(s) checked" in out and "0 with problems" in out
    for rel in cb.REQUIRED_PAGES:
        assert (shots / cb.screenshot_name(rel)).stat().st_size > 0
    assert not list(html_dir.rglob(".check_book_probe.*")), "the probe copies are removed"


def test_browser_run_fails_on_broken_book(html_dir: Path, tmp_path: Path, capsys, chromium):
    (html_dir / "generated" / "scorecard.html").write_text(page(SCORECARD_TABLE.format(rows="")))
    (html_dir / "generated" / "chapters" / "01_badsam.html").write_text(
        page(
            '<div class="output traceback"><pre>RuntimeError: boom</pre></div>'
            '<img src="../../_images/gone.png">'
            '<div class="output stderr"><pre>a.py:1: FutureWarning: soon</pre></div>'
        )
    )
    rc = cb.main(["--html", str(html_dir), "--screenshots", str(tmp_path / "shots")])
    out = capsys.readouterr().out
    assert rc == 1
    assert "FAIL generated/scorecard.html" in out and "empty scorecard" in out
    assert "FAIL generated/chapters/01_badsam.html" in out
    assert "error output" in out and "missing image" in out and "FutureWarning" in out
    assert "offers no download of its executed notebook" in out
    assert "OK   intro.html" in out


LAYOUT = """<style>
body {{ margin: 0; }} main {{ width: 600px; margin: 0 auto; }}
.scroll {{ overflow-x: auto; }} .cut {{ overflow: hidden; }}
</style>
<p id="x">as written</p>
<script>document.getElementById('x').textContent = 'changed by script';</script>
<div style="height: 4000px">tall</div>
{extra}
<p>end</p>"""


def test_render_screenshots_the_whole_page_and_returns_the_probed_dom(tmp_path, chromium):
    p = tmp_path / "p.html"
    p.write_text(
        page(
            LAYOUT.format(
                extra='<div class="scroll"><table><tr><td style="min-width: 2000px">wide '
                "table, scrolls</td></tr></table></div>"
                '<pre style="white-space: pre-wrap">' + "wrapped code line " * 40 + "</pre>"
            )
        )
    )
    dom = cb.render(p, tmp_path / "shot.png", chromium=chromium)
    assert "changed by script" in dom
    assert not (tmp_path / ".check_book_probe.p.html").exists()
    shot = (tmp_path / "shot.png").read_bytes()
    assert shot.startswith(b"\x89PNG") and int.from_bytes(shot[16:20], "big") == 1280
    height = int.from_bytes(shot[20:24], "big")
    assert height == cb.probe_height(dom) and height > 4000, "the whole page, not the window"
    assert cb.analyze_page(dom, p, probed=True) == []


def test_render_finds_what_sticks_out_of_the_column(tmp_path, chromium):
    p = tmp_path / "p.html"
    p.write_text(
        page(
            LAYOUT.format(
                extra='<div id="wide" style="width: 900px">too wide</div>'
                '<div class="cut"><div style="width: 900px">cut off</div></div>'
                '<pre style="white-space: pre; overflow-x: auto">' + "long line " * 100 + "</pre>"
            )
        )
    )
    problems = cb.analyze_page(
        cb.render(p, tmp_path / "shot.png", chromium=chromium), p, probed=True
    )
    assert len(problems) == 3, problems
    assert problems[0].startswith("<div> sticks out of the text column (900 px wide, 300 px")
    assert problems[0].endswith("'too wide'")
    assert problems[1].startswith("<div> is cut off at the column's edge")
    assert problems[2].startswith("<pre> has lines wider than its block")
