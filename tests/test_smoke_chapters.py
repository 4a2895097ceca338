"""Every chapter executes under its ``smoke`` profile: the ``paper`` code path (training inside
the chapter where ``paper`` trains) at toy sizes, through the same execution as the book build, so
that ``make book PROFILE=paper`` meets no code that CI has not run. All chapters together take at
most about five minutes on the 2-core build machine."""

import json

import pytest

from backdoorbook.book import execute
from backdoorbook.book.chapter import RESULTS_ENV
from backdoorbook.book.profiles import CHAPTERS, profile_names

pytestmark = pytest.mark.smoke


def test_every_chapter_has_a_smoke_profile():
    assert [s for s in CHAPTERS if "smoke" not in profile_names(s)] == []


@pytest.mark.parametrize("stem", [s for s in CHAPTERS if "smoke" in profile_names(s)])
def test_chapter_executes_under_smoke(stem, tmp_path, monkeypatch):
    for variable in (RESULTS_ENV, "TQDM_DISABLE", "PYTHONWARNINGS"):  # restored afterwards
        monkeypatch.delenv(variable, raising=False)
    log = execute.execute_chapters([stem], "smoke", 0, tmp_path / "chapters", tmp_path / "r")
    record = json.loads((tmp_path / "r" / f"{stem}.json").read_text())
    assert record["profile"] == "smoke" and log["chapters"][0]["status"] == "ok"
    assert record["claims"], "a chapter under smoke still states its claims"
    verdicts = {c["verdict"] for c in record["claims"]}
    assert verdicts <= {"reproduced", "not reproduced", "inconclusive"}
