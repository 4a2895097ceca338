"""What an output of an executed chapter must not show: a warning or a progress bar.

The book build (:mod:`backdoorbook.book.execute`) applies these patterns to every output of the
executed notebooks, and ``tools/check_book.py`` to the text of the rendered pages.
"""

from __future__ import annotations

import re

#: A Python warning as ``warnings`` prints it (``file.py:12: UserWarning: message``), the
#: source line it echoes, or a logging record at level WARNING.
WARNING_TEXT = re.compile(
    r"\b[A-Z]\w*Warning:|^\s*warnings\.warn\(|^\s*(?:WARNING|Warning)\b", re.MULTILINE
)
#: tqdm's text: the bar (``42%|###``), counts with timings (``| 42/100 [00:01<00:02``), rates
#: (``30.1it/s``, ``?it/s``, ``2.1s/it``), and a carriage return that redraws a line.
PROGRESS_TEXT = re.compile(
    r"\d{1,3}%\||\|\s*\d+/\d+\s*\[|\[\d+:\d\d(?::\d\d)?<|[\d?](?:it|s)/(?:s|it)\b|\r(?!\n)"
)


def excerpt(text: str, match: re.Match, width: int = 120) -> str:
    """The line of ``text`` that holds ``match``, shortened around it to ``width`` chars; for a
    match that is a line break (a carriage return), the line it starts."""
    breaks = re.compile(r"\r\n|\r|\n")
    if not match.group().strip():
        before, rest = "", text[match.end() :]
    else:
        before, rest = breaks.split(text[: match.start()])[-1], text[match.start() :]
    line = (before + breaks.split(rest, maxsplit=1)[0]).strip()
    if len(line) > width:
        at = max(0, len(before.lstrip()) - width // 3)
        line = ("..." if at else "") + line[at : at + width] + "..."
    return line


def text_problems(text: str) -> list[str]:
    """Warnings and progress bars shown in an output's ``text``, each with its line."""
    problems = []
    if m := WARNING_TEXT.search(text):
        problems.append(f"a warning: {excerpt(text, m)!r}")
    if m := PROGRESS_TEXT.search(text):
        problems.append(f"a progress bar: {excerpt(text, m)!r}")
    return problems
