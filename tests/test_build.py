"""The book build: a failing cell, or an output that must not reach the book, stops it and
names the chapter and the cell; MathJax comes from the book's own files; a small book renders
offline, with no CDN, and passes the browser checks."""

import os
import re
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import build_book  # noqa: E402

from backdoorbook.book import execute  # noqa: E402

#: The MyST header and parameters cell of the test chapters.
CHAPTER_HEAD = """---
jupytext:
  text_representation:
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---
"""
PARAMETERS = """```{code-cell} ipython3
:tags: [parameters]
profile = "ci"
seed = 0
```
"""

FAILING = (
    CHAPTER_HEAD
    + "# A failing chapter\n\n"
    + PARAMETERS
    + """
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
)


def test_failing_cell_stops_the_chapter_and_is_named(tmp_path, monkeypatch):
    (tmp_path / "99_fail.md").write_text(FAILING)
    with pytest.raises(
        execute.ChapterFailed,
        match=r"chapter 99_fail failed in cell \d+ .*ValueError: boom with profile paper",
    ):
        execute.execute_chapter("99_fail", "paper", 0, tmp_path / "out", notebooks=tmp_path)
    assert not (tmp_path / "should_not_run").exists()
    assert (tmp_path / "out" / "99_fail.ipynb").exists(), (
        "the executed notebook is kept for the traceback"
    )


def test_missing_source_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="chapter '42_x' is in book/_toc.yml"):
        execute.execute_chapter("42_x", "ci", 0, tmp_path, notebooks=tmp_path)


def test_toc_chapters_reads_generated_entries(tmp_path):
    toc = tmp_path / "_toc.yml"
    toc.write_text(
        "format: jb-book\nroot: intro\nparts:\n- caption: C\n  chapters:\n"
        "  - file: generated/chapters/00_data\n  - file: generated/chapters/06_t\n"
        "  - file: generated/scorecard\n"
    )
    assert build_book.toc_chapters(toc) == ["00_data", "06_t"]


def test_bad_profile_fails_before_any_chapter_runs(monkeypatch, tmp_path):
    ran = []
    monkeypatch.setattr(execute, "execute_chapter", lambda *a: ran.append(a))
    with pytest.raises(ValueError, match="valid profiles: ci, paper"):
        execute.execute_chapters(["00_data"], "huge", 0, tmp_path, tmp_path)
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


# --------------------------------------------------------------------------- clean pages


def notebook(*cells, metadata=None):
    import nbformat

    nb = nbformat.v4.new_notebook(metadata=metadata or {})
    nb.cells = list(cells)
    return nb


def code(source, *outputs, tags=(), count=1):
    import nbformat

    cell = nbformat.v4.new_code_cell(source, execution_count=count, outputs=list(outputs))
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


def stream(text, name="stdout"):
    import nbformat

    return nbformat.v4.new_output("stream", name=name, text=text)


def display(data):
    import nbformat

    return nbformat.v4.new_output("display_data", data=data)


def test_clean_outputs_pass():
    nb = notebook(
        code("print(1)", stream("accuracy 91.2 % (n = 10000)\n")),
        code("df", display({"text/html": "<table><tr><td>42 %</td></tr></table>"})),
        code("x", stream("loading cifar10\n", name="stderr")),
    )
    assert execute.output_problems(nb, ["/home/reader/backdoorbook"]) == []


def test_warnings_progress_bars_and_machine_paths_are_named_by_cell():
    repo = "/home/reader/backdoorbook"
    nb = notebook(
        code(
            "import x",
            stream(f"{repo}/.venv/lib/tqdm/auto.py:21: TqdmWarning: IProgress\n", "stderr"),
        ),
        code(
            "for _ in tqdm(a):",
            stream("decoding gtsrb/test:  40%|####      | 4/10 [00:01<00:02]\r"),
        ),
        code(
            "record = run.finish()\nprint(record)",
            stream(f"results record: {repo}/book/r.json\n"),
            count=7,
        ),
        code("show()", display({"text/plain": f"PosixPath('{repo}')"})),
        code("bar", display({"application/vnd.jupyter.widget-view+json": {"model_id": "1"}})),
    )
    problems = execute.output_problems(nb, [repo])
    assert problems == [
        "cell 0 (execution count 1) 'import x': stderr shows a warning: "
        f"'{repo}/.venv/lib/tqdm/auto.py:21: TqdmWarning: IProgress'",
        "cell 0 (execution count 1) 'import x': stderr shows an absolute path of the build "
        f"machine ({repo}): '{repo}/.venv/lib/tqdm/auto.py:21: TqdmWarning: IProgress'",
        "cell 1 (execution count 1) 'for _ in tqdm(a):': stdout shows a progress bar: "
        "'decoding gtsrb/test:  40%|####      | 4/10 [00:01<00:02]'",
        "cell 2 (execution count 7) 'record = run.finish()': stdout shows an absolute path of "
        f"the build machine ({repo}): 'results record: {repo}/book/r.json'",
        "cell 3 (execution count 1) 'show()': text/plain shows an absolute path of the build "
        f"machine ({repo}): \"PosixPath('{repo}')\"",
        "cell 4 (execution count 1) 'bar': a Jupyter widget (a progress bar?), which needs a "
        "CDN script and renders nowhere in the static book",
    ]


def test_machine_paths_match_whole_path_components_only():
    nb = notebook(code("x", stream("/home/readers and /home/reader.old and ~/home/reader\n")))
    assert execute.output_problems(nb, ["/home/reader"]) == []


def test_machine_paths_are_the_repository_environment_home_and_data(monkeypatch, tmp_path):
    monkeypatch.setenv("BACKDOORBOOK_DATA", f"{tmp_path / 'mirror'}:{tmp_path / 'more'}")
    monkeypatch.setenv("BACKDOORBOOK_CACHE", str(tmp_path / "cache"))
    paths = execute.machine_paths()
    assert set(paths) >= {str(ROOT), sys.prefix, str(Path.home()), str(tmp_path / "mirror")}
    assert {str(tmp_path / "more"), str(tmp_path / "cache")} <= set(paths)
    assert "/" not in paths and paths == sorted(paths, key=len, reverse=True)


def test_finalise_hides_the_injected_parameters_cell_and_relativises_paths(tmp_path):
    import nbformat

    executed = tmp_path / "c.ipynb"
    papermill = {"input_path": "/abs/c.input.ipynb", "output_path": str(executed)}
    nb = notebook(
        code('profile = "ci"', tags=["parameters"]),
        code('profile = "paper"', tags=["injected-parameters"]),
        code("print('ok')", stream("ok\n")),
        metadata={"papermill": papermill},
    )
    nbformat.write(nb, executed)
    assert execute.finalise_notebook(executed, ROOT / "notebooks" / "c.md") == []
    nb = nbformat.read(executed, as_version=4)
    assert [c.metadata.get("tags") for c in nb.cells] == [
        ["parameters"],
        ["injected-parameters", "remove-cell"],
        None,
    ]
    assert nb.metadata.papermill.input_path == "notebooks/c.md"
    assert nb.metadata.papermill.output_path == "c.ipynb"


NOISY = (
    FAILING.split("```{code-cell} ipython3\nx = 1")[0]
    + """```{code-cell} ipython3
import warnings
warnings.warn("careful")
```

```{code-cell} ipython3
import os
from tqdm import tqdm
for _ in tqdm(range(3), desc="decoding", mininterval=0):
    pass
print("record at", os.path.expanduser("~/.cache/x.json"))
```
"""
)


def test_noisy_chapter_fails_the_build_naming_cells_and_text(tmp_path, monkeypatch):
    import nbformat

    (tmp_path / "98_noisy.md").write_text(NOISY)
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    with pytest.raises(execute.ChapterFailed) as failed:
        execute.execute_chapter("98_noisy", "ci", 0, tmp_path / "out", notebooks=tmp_path)
    message = str(failed.value)
    assert message.startswith("chapter 98_noisy: 3 output(s) that must not reach the book")
    assert "'import warnings': stderr shows a warning: " in message
    assert "UserWarning: careful" in message
    assert "'import os': stderr shows a progress bar: 'decoding:   0%|" in message
    home = Path.home()
    assert f"'import os': stdout shows an absolute path of the build machine ({home})" in message
    nb = nbformat.read(tmp_path / "out" / "98_noisy.ipynb", as_version=4)
    tags = [c.metadata.get("tags", []) for c in nb.cells if c.cell_type == "code"]
    assert tags[0] == ["parameters"], "the source's own parameters cell stays visible"
    assert tags[1] == ["injected-parameters", "remove-cell"]


# --------------------------------------------------------------------------- partial books


def test_partial_toc_keeps_only_the_chosen_chapters(tmp_path):
    toc = tmp_path / "_toc.yml"
    toc.write_text(
        "format: jb-book\nroot: intro\nparts:\n- caption: A\n  chapters:\n  - file: notation\n"
        "  - file: generated/chapters/00_data\n- caption: B\n  chapters:\n"
        "  - file: generated/chapters/01_x\n- caption: C\n  chapters:\n"
        "  - file: generated/scorecard\n"
    )
    assert build_book.partial_toc(["00_data"], toc) == {
        "format": "jb-book",
        "root": "intro",
        "parts": [
            {
                "caption": "A",
                "chapters": [{"file": "notation"}, {"file": "generated/chapters/00_data"}],
            },
            {"caption": "C", "chapters": [{"file": "generated/scorecard"}]},
        ],
    }
    config = build_book.partial_config()
    assert set(build_book.PARTIAL_SUPPRESSED) <= set(
        config["sphinx"]["config"]["suppress_warnings"]
    )


def test_html_needs_chapters(capsys):
    with pytest.raises(SystemExit):
        build_book.main(["--html"])
    assert "--html renders a partial book" in capsys.readouterr().err


# --------------------------------------------------------------------------- MathJax


def test_config_serves_mathjax_from_the_static_files():
    config = yaml.safe_load((ROOT / "book" / "_config.yml").read_text())
    sphinx = config["sphinx"]["config"]
    assert sphinx["mathjax_path"] == f"mathjax/{build_book.MATHJAX_ENTRY}"
    assert build_book.EXTRA in sphinx["html_extra_path"]
    assert "generated/_extra/**" in config["exclude_patterns"]
    assert config["html"]["use_download_button"] is True
    assert not list((ROOT / "book" / "_static").rglob("*.js")), (
        "Jupyter Book adds every .js in _static to every page"
    )


FAKE_NPM = """#!/bin/sh
# a stand-in for `npm pack mathjax@VERSION`: writes the package tarball into the working
# folder, the same bytes every time
mkdir -p package/es5/output package/es5/input package/es5/a11y package/es5/ui package/es5/sre
echo '// mathjax' > package/es5/{entry}
echo font > package/es5/output/font.woff && echo tex > package/es5/input/tex.js
echo other > package/es5/tex-svg.js && echo '{{}}' > package/package.json
tar --sort=name --mtime=@0 --owner=0 --group=0 -cf - package | gzip -n > mathjax-{version}.tgz
rm -r package
"""


def fake_npm(tmp_path):
    npm = tmp_path / "npm"
    npm.write_text(
        FAKE_NPM.format(entry=build_book.MATHJAX_ENTRY, version=build_book.MATHJAX_VERSION)
    )
    npm.chmod(0o755)
    return str(npm)


def test_install_mathjax_checks_the_tarball(tmp_path, monkeypatch):
    home = tmp_path / "mathjax"
    with pytest.raises(build_book.BuildError, match=r"has checksum sha512-.*expected sha512-"):
        build_book.install_mathjax(home, npm=fake_npm(tmp_path))
    assert not home.exists() or not any(home.iterdir()), "nothing installed"

    # with the stand-in's own checksum pinned, it installs es5/ and copies what the book needs
    import subprocess

    work = tmp_path / "w"
    work.mkdir()
    subprocess.run([fake_npm(tmp_path)], cwd=work, check=True)
    tarball = work / f"mathjax-{build_book.MATHJAX_VERSION}.tgz"
    monkeypatch.setattr(
        build_book, "MATHJAX_INTEGRITY", build_book._integrity(tarball.read_bytes())
    )
    es5 = build_book.install_mathjax(home, npm=fake_npm(tmp_path))
    assert (es5 / build_book.MATHJAX_ENTRY).is_file()
    assert build_book.install_mathjax(home, npm="/nonexistent/npm") == es5, "installed once"
    entry = build_book.copy_mathjax(tmp_path / "book", es5)
    static = tmp_path / "book" / build_book.EXTRA / "_static" / "mathjax"
    assert entry == static / build_book.MATHJAX_ENTRY
    assert (static / "output" / "font.woff").is_file() and (static / "input" / "tex.js").is_file()
    assert not (static / "tex-svg.js").exists(), "only the component the book uses"


def test_missing_mathjax_is_an_error_with_the_fix(tmp_path):
    with pytest.raises(build_book.BuildError, match="MathJax 3.2.2 is not installed.*make setup"):
        build_book.copy_mathjax(tmp_path / "book", tmp_path / "nothing")


# --------------------------------------------------------------------------- a real render

PAGE = """# A page with math

Inline $x \\in [0,1]^{C \\times H \\times W}$ and a display:

$$
\\mathrm{ASR} = \\frac{|\\{(x,y) : \\hat y(T(x)) = t\\}|}{|\\mathcal{D}^{\\neg t}|}
$$

| a | wide | table |
|---|------|-------|
| 1 | 2 | 3 |
"""


def test_a_small_book_renders_offline_with_local_mathjax(tmp_path):
    """Build a two-page book with the real _config.yml and _static, then load it in Chromium."""
    import nbformat

    sys.path.insert(0, str(ROOT / "tools"))
    import check_book

    assert (build_book.MATHJAX_HOME / "es5" / build_book.MATHJAX_ENTRY).is_file(), (
        f"MathJax is not installed: {build_book.INSTALL_HINT}"
    )
    assert Path(check_book.DEFAULT_CHROMIUM).is_file(), check_book.INSTALL_HINT
    book = tmp_path / "book"
    book.mkdir()
    for name in ("_config.yml", "references.bib"):
        (book / name).write_text((ROOT / "book" / name).read_text())
    (book / "_static").mkdir()
    for css in (ROOT / "book" / "_static").glob("*.css"):
        (book / "_static" / css.name).write_text(css.read_text())
    (book / "intro.md").write_text(PAGE)
    (book / "_toc.yml").write_text(
        "format: jb-book\nroot: intro\nchapters:\n- file: generated/chapters/00_data\n"
    )
    chapter = notebook(
        nbformat.v4.new_markdown_cell("# Data\n\nThe budget $\\epsilon = 8/255$."),
        code("own_parameters_marker = 1", tags=["parameters"]),
        code("injected_parameters_marker = 2", tags=["injected-parameters", "remove-cell"]),
        code("x = " + " + ".join(["value"] * 30), stream("out " * 60 + "\n")),
        code(
            "df", display({"text/html": "<table><tr>" + "<td>column</td>" * 60 + "</tr></table>"})
        ),
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
    )
    (book / "generated" / "chapters").mkdir(parents=True)
    nbformat.write(chapter, book / "generated" / "chapters" / "00_data.ipynb")
    html = build_book.render_html(book)

    assert (html / "_static" / "mathjax" / build_book.MATHJAX_ENTRY).is_file()
    assert (html / "_static" / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2").is_dir()
    for page in html.rglob("*.html"):
        text = page.read_text()
        assert "cdn." not in text and "mathjax@" not in text, page
        assert not re.search(r"""<(script|link)[^>]+(src|href)=["'](https?:)?//""", text), page
    intro = (html / "intro.html").read_text()
    assert 'src="_static/mathjax/tex-mml-chtml.js' in intro and "backdoorbook.css" in intro
    page = (html / "generated" / "chapters" / "00_data.html").read_text()
    assert "injected_parameters_marker" not in page and "own_parameters_marker" in page
    assert "../../_sources/generated/chapters/00_data.ipynb" in page
    assert (html / "_sources" / "generated" / "chapters" / "00_data.ipynb").is_file()

    for rel in ("intro.html", "generated/chapters/00_data.html"):
        dom = check_book.render(html / rel, tmp_path / "shots" / check_book.screenshot_name(rel))
        assert "<mjx-container" in dom, f"{rel}: MathJax did not typeset"
        problems = check_book.analyze_page(
            dom, html / rel, chapter=rel.startswith("generated/"), probed=True
        )
        assert problems == [], rel


CORES = (
    CHAPTER_HEAD
    + PARAMETERS
    + """
```{code-cell} ipython3
import os
print("cores", len(os.sched_getaffinity(0)), "seed", seed)
```
"""
)


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two cores")
def test_two_jobs_run_chapters_each_on_a_core_of_its_own(tmp_path, monkeypatch):
    import nbformat

    for stem in ("97_a", "97_b", "97_c"):
        (tmp_path / f"{stem}.md").write_text(CORES)
    monkeypatch.setattr(execute, "get_profile", lambda stem, profile: None)
    out = tmp_path / "out"
    log = execute.execute_chapters(
        ["97_c", "97_a", "97_b"], "ci", 5, out, tmp_path / "r", jobs=2, notebooks=tmp_path
    )
    assert [c["chapter"] for c in log["chapters"]] == ["97_c", "97_a", "97_b"]
    assert log["jobs"] == 2
    for stem in ("97_a", "97_b", "97_c"):
        nb = nbformat.read(out / f"{stem}.ipynb", as_version=4)
        assert nb.cells[-1].outputs[0]["text"] == "cores 1 seed 5\n"
    with pytest.raises(ValueError, match="jobs must be between 1 and the"):
        execute.execute_chapters(["97_a"], "ci", 0, out, out, jobs=len(os.sched_getaffinity(0)) + 1)


def test_keep_going_records_a_failed_chapter_and_runs_the_rest(tmp_path, monkeypatch):
    (tmp_path / "99_fail.md").write_text(FAILING)
    (tmp_path / "97_a.md").write_text(CORES)
    monkeypatch.setattr(execute, "get_profile", lambda stem, profile: None)
    log = execute.execute_chapters(
        ["99_fail", "97_a"],
        "ci",
        0,
        tmp_path / "o",
        tmp_path / "r",
        notebooks=tmp_path,
        keep_going=True,
    )
    statuses = [(c["chapter"], c["status"]) for c in log["chapters"]]
    assert statuses == [("99_fail", "failed"), ("97_a", "ok")]
    assert "ValueError: boom with profile ci" in log["chapters"][0]["error"]
