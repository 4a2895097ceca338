"""The book build stops at the first failing cell and names the chapter and the cell."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import build_book  # noqa: E402

FAILING = """---
jupytext:
  text_representation:
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---
# A failing chapter

```{code-cell} ipython3
:tags: [parameters]
profile = "ci"
seed = 0
```

```{code-cell} ipython3
x = 1
```

```{code-cell} ipython3
raise ValueError(f"boom with profile {profile}")
```

```{code-cell} ipython3
open("should_not_run", "w").write("ran")
```
"""


def test_failing_cell_stops_the_chapter_and_is_named(tmp_path, monkeypatch):
    (tmp_path / "99_fail.md").write_text(FAILING)
    monkeypatch.setattr(build_book, "NOTEBOOKS", tmp_path)
    with pytest.raises(
        build_book.ChapterFailed,
        match=r"chapter 99_fail failed in cell \d+ .*ValueError: boom with profile paper",
    ):
        build_book.execute_chapter("99_fail", "paper", 0, tmp_path / "out")
    assert not (tmp_path / "should_not_run").exists()
    assert (tmp_path / "out" / "99_fail.ipynb").exists(), (
        "the executed notebook is kept for the traceback"
    )


def test_missing_source_is_named(tmp_path, monkeypatch):
    monkeypatch.setattr(build_book, "NOTEBOOKS", tmp_path)
    with pytest.raises(FileNotFoundError, match="chapter '42_x' is in book/_toc.yml"):
        build_book.execute_chapter("42_x", "ci", 0, tmp_path)


def test_toc_chapters_reads_generated_entries(tmp_path):
    toc = tmp_path / "_toc.yml"
    toc.write_text(
        "format: jb-book\nroot: intro\nparts:\n- caption: C\n  chapters:\n"
        "  - file: generated/chapters/00_data\n  - file: generated/chapters/06_t\n"
        "  - file: generated/scorecard\n"
    )
    assert build_book.toc_chapters(toc) == ["00_data", "06_t"]


def test_bad_profile_fails_before_any_chapter_runs(monkeypatch, tmp_path):
    monkeypatch.setattr(build_book, "GENERATED", tmp_path)
    ran = []
    monkeypatch.setattr(build_book, "execute_chapter", lambda *a: ran.append(a))
    with pytest.raises(ValueError, match="valid profiles: ci, paper"):
        build_book.execute_all(["00_data"], "huge", 0)
    assert not ran


def test_notebook_lint_checks_code_cells_only_and_reports_notebook_lines(
    tmp_path, capsys, monkeypatch
):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
    import lint_notebooks

    long_prose = "word " * 40
    source = (
        "---\njupytext:\n  text_representation:\n    format_name: myst\nkernelspec:\n"
        "  display_name: Python 3\n  language: python\n  name: python3\n---\n\n"
        f"{long_prose}\n\n```{{code-cell}} ipython3\n:tags: [parameters]\n\nseed = 0\n```\n\n"
        f'```{{code-cell}} ipython3\nx = 1\ny = "{"a" * 120}"\n```\n'
    )
    notebook = tmp_path / "chapter.md"
    notebook.write_text(source)
    monkeypatch.chdir(tmp_path)  # ruff then prints the temporary file's path relative to here
    assert lint_notebooks.main(["chapter.md"]) == 1
    findings = [line for line in capsys.readouterr().out.splitlines() if "E501" in line]
    expected_line = source.splitlines().index(f'y = "{"a" * 120}"') + 1
    assert findings == [f"chapter.md:{expected_line}:101: E501 Line too long (126 > 100)"]
