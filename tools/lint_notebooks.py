"""Lint the code cells of the chapter notebooks with ruff, as if they were one Python file each.

    python tools/lint_notebooks.py [notebooks/*.md]

The code cells of each MyST notebook (read with jupytext) are written, in order, to a
temporary ``notebooks/<stem>.py`` (so ``pyproject.toml``'s per-file rules for notebooks apply);
findings are reported with the notebook's own line numbers. Markdown cells are prose and are not
linted. Exits with ruff's status.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import jupytext

ROOT = Path(__file__).resolve().parents[1]
RUFF = Path(sys.executable).with_name("ruff")


def code_with_line_map(path: Path) -> tuple[str, list[int]]:
    """The notebook's code cells as one source text, and each of its lines' notebook line."""
    text = path.read_text()
    lines = text.splitlines()
    notebook = jupytext.reads(text, fmt="md:myst")
    code, origin, cursor = [], [], 0
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        cell_lines = cell.source.splitlines()
        start = next(i for i in range(cursor, len(lines)) if lines[i].startswith("```{code-cell}"))
        first = (
            start
            + 1
            + next(  # skip the cell's option lines (":tags: [...]" and the blank)
                k
                for k, line in enumerate(lines[start + 1 :])
                if cell_lines and line == cell_lines[0]
            )
        )
        code += cell_lines + [""]
        origin += [first + k + 1 for k in range(len(cell_lines))] + [first + len(cell_lines)]
        cursor = first + len(cell_lines)
    return "\n".join(code) + "\n", origin


def lint(path: Path) -> int:
    source, origin = code_with_line_map(path)
    with tempfile.NamedTemporaryFile(
        "w", suffix=".py", prefix=f"{path.stem}-", dir=path.parent, delete=False
    ) as handle:
        handle.write(source)
    temporary = Path(handle.name)
    try:
        result = subprocess.run(
            [
                str(RUFF),
                "check",
                "--config",
                str(ROOT / "pyproject.toml"),
                "--output-format",
                "concise",
                str(temporary),
            ],
            capture_output=True,
            text=True,
        )
    finally:
        temporary.unlink()
    for line in result.stdout.splitlines():
        match = re.match(rf"(?:\S*/)?{re.escape(temporary.name)}:(\d+):(\d+): (.*)", line)
        if match:
            print(f"{path}:{origin[int(match[1]) - 1]}:{match[2]}: {match[3]}")
    return result.returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "notebooks", nargs="*", type=Path, default=sorted((ROOT / "notebooks").glob("*.md"))
    )
    args = parser.parse_args(argv)
    status = max(lint(path) for path in args.notebooks)
    print("notebook code cells: " + ("all checks passed" if status == 0 else "findings above"))
    return status


if __name__ == "__main__":
    sys.exit(main())
