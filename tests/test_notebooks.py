"""Notebook hygiene: chapter sources carry no outputs, have a parameters cell, run Python,
and every chapter is in the table of contents with a profile."""

import re
from pathlib import Path

import jupytext
import pytest

from backdoorbook.book.profiles import CHAPTERS

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((ROOT / "notebooks").glob("*.md"))


def _toc_chapters():
    import sys

    sys.path.insert(0, str(ROOT / "tools"))
    from build_book import toc_chapters

    return toc_chapters()


def test_there_are_chapters():
    assert SOURCES, "no chapter notebooks in notebooks/"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.stem)
def test_chapter_source_hygiene(path):
    text = path.read_text()
    assert "format_name: myst" in text, "chapters are MyST markdown notebooks (jupytext)"
    nb = jupytext.reads(text, fmt="md:myst")
    assert nb.metadata["kernelspec"]["language"] == "python"
    assert nb.metadata["kernelspec"]["name"] == "python3"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), (
        "sources carry no outputs"
    )
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged 'parameters'"
    params = tagged[0].source
    for name in ("profile", "seed"):
        assert f"{name} =" in params, f"the parameters cell must define {name}"
    assert path.stem in CHAPTERS, f"chapter {path.stem} has no entry in profiles.CHAPTERS"


def test_toc_and_sources_agree():
    assert sorted(_toc_chapters()) == [p.stem for p in SOURCES]


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.stem)
def test_chapters_import_only_public_library_names(path):
    nb = jupytext.reads(path.read_text(), fmt="md:myst")
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    imports = re.findall(r"from (backdoorbook[\w.]*) import \(?([^)\n]*(?:\n[^)\n]*)*?)\)?\n", code)
    names = [(module, name.strip()) for module, group in imports for name in group.split(",")]
    assert names, "a chapter calls the library"
    private = [f"{module}.{name}" for module, name in names if name.startswith("_")]
    private += [m for m, _ in names if any(part.startswith("_") for part in m.split("."))]
    assert not private, f"notebooks import private names: {private}"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.stem)
def test_chapters_show_library_code_that_exists(path):
    text = path.read_text()
    for target, obj in re.findall(r"```\{literalinclude\} /\.\./(\S+)\n:pyobject: (\S+)", text):
        source = (ROOT / target).read_text()
        first, *rest = obj.split(".")
        assert re.search(rf"^(class|def) {first}\b", source, re.M), f"{obj} not in {target}"
        for member in rest:
            assert re.search(rf"^\s+def {member}\b", source, re.M), f"{obj} not in {target}"
