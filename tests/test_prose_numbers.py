"""Every number in a chapter's prose comes from the run (glued with myst-nb's ``glue``) or is on a
short allowlist: paper figures carrying a source tag, names with digits (ResNet-20, CIFAR-10,
5-way), citations and years, and a few settings per chapter listed here."""

import re
from pathlib import Path

import jupytext
import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((ROOT / "notebooks").glob("*.md"))
TAGS = ("[abs]", "[code]", "[review]", "[3p]", "[?]")
#: Settings a chapter states in prose, read from its profile or the paper's protocol.
#: The confidence level of every interval is stated in prose by every chapter.
ALLOWED_EVERYWHERE = {"95 %"}
ALLOWED: dict[str, set[str]] = {}

STRIP = [
    r"```.*?```",  # fenced blocks (directives, code)
    r"\$\$.*?\$\$",  # display math
    r"\$[^$\n]+\$",  # inline math
    r"`[^`\n]*`",  # code spans and the argument of roles
    r"\{[a-z:-]+\}",  # role names left over ({cite}, {glue:text}, {ref})
    r"\]\([^)]*\)",  # link targets
    r"https?://\S+",
    r"<!--.*?-->",
    r"(?m)^\s*\d+\.\s",  # ordered-list markers
    r"(?m)^\([\w-]+\)=\s*$",  # MyST target labels, e.g. (fidelity-05_flba)=
]
NUMBER = re.compile(r"(?<![\w.-])\d[\d,.]*(?:\s?%|\s?/\s?\d+)?")
NAME = re.compile(
    r"[A-Za-z][\w-]*/\d+"  # ViT-B/32
    r"|[A-Za-z]\w*-\d+"  # ResNet-20, CIFAR-10, top-10
    r"|\d+-(?:way|shot|bit|layer|block|step|px)"
    r"|\b\d+[a-zA-Z]+\b"
)
YEAR = re.compile(r"^(19|20)\d\d$")


def _prose(path: Path) -> list[str]:
    notebook = jupytext.reads(path.read_text(), fmt="md:myst")
    text = "\n\n".join(c.source for c in notebook.cells if c.cell_type == "markdown")
    for pattern in STRIP:
        text = re.sub(pattern, " ", text, flags=re.S)
    return [s for s in re.split(r"(?<=[.!?])\s+|\n\s*\n", text) if s.strip()]


def unglued_numbers(path: Path) -> list[str]:
    """``"number  (in: sentence)"`` for every number in prose that no exemption covers."""
    allowed = ALLOWED_EVERYWHERE | ALLOWED.get(path.stem, set())
    found = []
    for sentence in _prose(path):
        if any(tag in sentence for tag in TAGS) or sentence.lstrip().startswith("#"):
            continue
        masked = NAME.sub(" ", sentence)
        for match in NUMBER.finditer(masked):
            number = match.group().strip().rstrip(".,")
            if YEAR.match(number) or number in allowed:
                continue
            found.append(f"{number}  (in: {sentence.strip()[:90]})")
    return found


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.stem)
def test_numbers_in_prose_are_glued_from_the_run(path):
    found = unglued_numbers(path)
    assert not found, "numbers in prose that the run did not compute:\n" + "\n".join(found)
