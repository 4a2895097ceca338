"""Tests for tools/check_book.py: DOM analysis without a browser, the driver with one."""

from __future__ import annotations

import base64
import importlib.util
import struct
import zlib
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[1] / "tools" / "check_book.py"
_spec = importlib.util.spec_from_file_location("check_book", _PATH)
cb = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cb)

CHROMIUM = Path("/usr/bin/chromium")
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.is_file(), reason="needs Debian's chromium at /usr/bin/chromium"
)


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
    (root / "generated" / "chapters" / "00_data.html").write_text(
        page(
            '<h1>Data</h1><div class="output stderr"><pre>UserWarning: slow</pre></div>'
            '<img src="../../_images/fig.png">'
            f'<img src="{data_uri(png_bytes())}">'
        )
    )
    (root / "generated" / "scorecard.html").write_text(
        page("<h1>Scorecard</h1>" + SCORECARD_TABLE.format(rows=CLAIM_ROW))
    )
    (root / "generated" / "execution_report.html").write_text(page("<h1>Report</h1>"))
    return root


# --------------------------------------------------------------------------- DOM analysis


def test_good_pages_have_no_problems(html_dir: Path):
    for rel in cb.REQUIRED_PAGES:
        p = html_dir / rel
        assert cb.analyze_page(p.read_text(), p, scorecard=rel == cb.SCORECARD) == [], rel


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


def test_stderr_warning_and_scripts_are_not_errors(tmp_path: Path):
    body = (
        '<div class="output stderr"><pre>UserWarning: deprecated</pre></div>'
        '<script>var s = "Traceback (most recent call last)";</script>'
    )
    assert cb.analyze_page(page(body), tmp_path / "p.html") == []


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


def test_good_images_and_remote_images_pass(tmp_path: Path):
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "a b.png").write_bytes(png_bytes())
    svg = "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg'%3E%3C/svg%3E"
    body = (
        f'<img src="img/a%20b.png"><img src="{data_uri(png_bytes())}">'
        f'<img src="{svg}"><img src="https://example.org/x.png">'
    )
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
    (html_dir / "generated" / "execution_report.html").unlink()
    present, missing = cb.pages_to_check(html_dir)
    assert "generated/chapters/03_iba.html" in present
    assert missing == ["generated/execution_report.html"]
    assert cb.screenshot_name("generated/chapters/03_iba.html") == "generated__chapters__03_iba.png"


def test_missing_browser_gives_install_hint(html_dir: Path, tmp_path: Path, capsys):
    rc = cb.main(["--html", str(html_dir), "--chromium", str(tmp_path / "no-chromium")])
    assert rc == 2
    assert "apt-get install -y chromium" in capsys.readouterr().err


# --------------------------------------------------------------------------- with the browser


@needs_chromium
def test_browser_run_passes_on_good_book(html_dir: Path, tmp_path: Path, capsys):
    shots = tmp_path / "shots"
    assert cb.main(["--html", str(html_dir), "--screenshots", str(shots)]) == 0
    out = capsys.readouterr().out
    assert "4 page(s) checked" in out and "0 with problems" in out
    for rel in cb.REQUIRED_PAGES:
        assert (shots / cb.screenshot_name(rel)).stat().st_size > 0


@needs_chromium
def test_browser_run_fails_on_broken_book(html_dir: Path, tmp_path: Path, capsys):
    (html_dir / "generated" / "scorecard.html").write_text(page(SCORECARD_TABLE.format(rows="")))
    (html_dir / "generated" / "chapters" / "01_badsam.html").write_text(
        page(
            '<div class="output traceback"><pre>RuntimeError: boom</pre></div>'
            '<img src="../../_images/gone.png">'
        )
    )
    rc = cb.main(["--html", str(html_dir), "--screenshots", str(tmp_path / "shots")])
    out = capsys.readouterr().out
    assert rc == 1
    assert "FAIL generated/scorecard.html" in out and "empty scorecard" in out
    assert "FAIL generated/chapters/01_badsam.html" in out
    assert "error output" in out and "missing image" in out
    assert "OK   intro.html" in out


@needs_chromium
def test_render_takes_a_screenshot_and_returns_the_script_modified_dom(tmp_path: Path):
    p = tmp_path / "p.html"
    p.write_text(
        page(
            "<p id='x'>as written</p>"
            "<script>document.getElementById('x').textContent = 'changed by script';</script>"
        )
    )
    dom = cb.render(p, tmp_path / "shot.png")
    assert "changed by script" in dom
    shot = (tmp_path / "shot.png").read_bytes()
    assert shot.startswith(b"\x89PNG") and int.from_bytes(shot[16:20], "big") == 1280
