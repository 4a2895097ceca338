"""Fidelity declarations: their form, their place in the records, and what docstrings may say."""

import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import pytest

import backdoorbook
from backdoorbook.book.chapter import ChapterRun, fidelity_table
from backdoorbook.book.report import render_scorecard
from backdoorbook.claims.core import Criterion, make_claim
from backdoorbook.claims.intervals import Interval
from backdoorbook.fidelity import FIDELITY_CLAIMS, Deviation

ROOT = Path(__file__).resolve().parents[1]


def _deviation(**changes):
    fields = dict(
        item="trigger",
        authors="a 3x3 random patch (sycny/ZIP@3778253 attack.py)",
        ours="a checkerboard",
        why="a reason",
        claims=("c1",),
    )
    return Deviation(**{**fields, **changes})


def _declared() -> list[tuple[str, Deviation]]:
    """(module, deviation) for every DEVIATIONS tuple in the package."""
    found = []
    for info in pkgutil.walk_packages(backdoorbook.__path__, "backdoorbook."):
        module = importlib.import_module(info.name)
        found += [(info.name, d) for d in getattr(module, "DEVIATIONS", ())]
    return found


def _resolve(dotted: str):
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:split]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[split:]:
            obj = getattr(obj, attribute)
        return obj
    raise ImportError(dotted)


def test_a_deviation_needs_its_fields_and_where_the_authors_setting_was_read():
    with pytest.raises(ValueError, match="non-empty 'why'"):
        _deviation(why=" ")
    with pytest.raises(ValueError, match="repository@commit"):
        _deviation(authors="a random patch")
    assert _deviation().as_row()["claims it can affect"] == "c1"


def test_the_chapter_record_carries_its_deviations_and_refuses_unknown_claims(tmp_path):
    run = ChapterRun("00_data", "The data", device="cpu")
    table = run.add_fidelity((_deviation(),), (_deviation(),))  # a deviation counts once
    assert list(table.index) == ["trigger"] and len(run.fidelity) == 1
    with pytest.raises(ValueError, match="claims this chapter does not make: \\['c1'\\]"):
        run.record()
    effect = Interval(3.0, 2.0, 4.0, n=10)
    run.add_claim(make_claim("c1", "s", Criterion("m", effect, 1.0), rule="r", ours="o"))
    record = run.record()
    assert record["fidelity"][0]["item"] == "trigger"
    assert record["fidelity_label"] == "fidelity-00_data"
    page = render_scorecard([record])
    assert "{ref}`1 declared <fidelity-00_data>`" in page and "Deviations declared" in page
    assert fidelity_table([]).empty


@pytest.mark.parametrize("module, deviation", _declared(), ids=lambda v: getattr(v, "item", v))
def test_code_named_by_a_deviation_exists_and_does_not_claim_the_authors_setting(module, deviation):
    assert deviation.where, f"{module}: say which objects implement {deviation.item!r}"
    for dotted in deviation.where:
        doc = (inspect.getdoc(_resolve(dotted)) or "").lower()
        said = [phrase for phrase in FIDELITY_CLAIMS if phrase in doc]
        assert not said, f"{dotted} says {said} but {module} declares {deviation.item!r}"


@pytest.mark.parametrize("path", sorted((ROOT / "notebooks").glob("*.md")), ids=lambda p: p.stem)
def test_chapters_do_not_claim_fidelity_in_prose(path):
    text = re.sub(r"\s+", " ", path.read_text().lower().replace("’", "'"))
    assert not [phrase for phrase in FIDELITY_CLAIMS if phrase in text], (
        "a chapter states where it follows the authors in its Fidelity table, not in prose"
    )
