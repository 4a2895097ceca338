"""The book checks: DOM analysis on hand-made pages, and the browser path when Chromium exists."""

import base64
import io
import sys
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import check_book  # noqa: E402


def _png_bytes(size=(4, 4)):
    buffer = io.BytesIO()
    Image.new("RGB", size, "red").save(buffer, "PNG")
    return buffer.getvalue()


def _page(body):
    return f"<html><head><script>var t = 'Traceback (most recent call last)';</script></head><body>{body}</body></html>"


def test_good_page_with_images_and_table(tmp_path):
    (tmp_path / "fig.png").write_bytes(_png_bytes())
    data_uri = "data:image/png;base64," + base64.b64encode(_png_bytes()).decode()
    html = _page(f'<img src="fig.png"><img src="{data_uri}"><table><thead><tr><th>Claim</th></tr></thead>'
                 "<tbody><tr><td>A</td></tr></tbody></table>")
    assert check_book.analyze_page(html, tmp_path / "page.html", scorecard=True) == []


def test_error_outputs_are_detected(tmp_path):
    page = tmp_path / "p.html"
    assert "error output" in check_book.analyze_page(_page('<div class="output error">x</div>'), page)[0]
    assert "error output" in check_book.analyze_page(_page('<div class="output traceback">x</div>'), page)[0]
    text = _page("<pre>Traceback (most recent call last):\n  File ...</pre>")
    assert "traceback" in check_book.analyze_page(text, page)[0]
    assert check_book.analyze_page(_page('<div class="output stderr">Warning: slow</div>'), page) == []


def test_broken_images_are_detected(tmp_path):
    page = tmp_path / "p.html"
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "junk.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    problems = check_book.analyze_page(_page('<img src="missing.png"><img src="empty.png"><img src="junk.png">'
                                             '<img src="data:image/png;base64,!!!">'), page)
    assert len(problems) == 4
    assert "missing image 'missing.png'" in problems[0]
    assert "zero-size" in problems[1]
    assert "broken data URI" in problems[3] or "undecodable data URI" in problems[3]


def test_empty_scorecard_is_detected(tmp_path):
    html = _page("<table><thead><tr><th>Claim</th></tr></thead><tbody></tbody></table>")
    assert check_book.analyze_page(html, tmp_path / "s.html", scorecard=True) == [
        "empty scorecard: no claim rows in any table body"]
    assert check_book.analyze_page(html, tmp_path / "s.html", scorecard=False) == []


def test_missing_required_pages_are_reported(tmp_path):
    (tmp_path / "intro.html").write_text(_page("hi"))
    present, missing = check_book.pages_to_check(tmp_path)
    assert present == ["intro.html"]
    assert set(missing) == set(check_book.REQUIRED_PAGES) - {"intro.html"}


@pytest.mark.skipif(not Path(check_book.DEFAULT_CHROMIUM).is_file(), reason="Debian's chromium is not installed")
def test_render_takes_a_screenshot_and_returns_the_dom(tmp_path):
    page = tmp_path / "p.html"
    page.write_text(_page("<p id='x'>rendered by the browser</p><script>document.getElementById('x')"
                          ".textContent = 'changed by script';</script>"))
    dom = check_book.render(page, tmp_path / "shot.png")
    assert "changed by script" in dom
    assert Image.open(tmp_path / "shot.png").size[0] > 100
