"""Where the library departs from the authors' code, declared as data next to the code.

A method module that departs from its paper's reference implementation lists the
departures in a module-level ``DEVIATIONS`` tuple of :class:`Deviation`. Each chapter collects
the deviations of the modules it runs (:meth:`backdoorbook.book.chapter.ChapterRun.add_fidelity`)
and shows them as its *Fidelity* table just before its claims, so a reader can tell a claim
that fails from a method that was changed; the scorecard counts them per chapter. Settings
that follow the authors are not listed. A test holds the docstrings of the objects named in
``where`` to the declarations: none of them may say it follows the authors' code.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Phrases that claim fidelity to the authors' code; forbidden where a deviation is declared.
FIDELITY_CLAIMS = ("as in the authors' code", "as the authors' code does", "exactly as the authors")


@dataclass(frozen=True)
class Deviation:
    """One departure from the authors' code.

    Attributes:
        item: what differs, in a few words (e.g. ``"BadNets trigger pattern"``).
        authors: the authors' setting, with where it was read (repository@commit and path).
        ours: what this library does instead.
        why: the reason we keep ours (a CPU budget, a missing resource, a bug upstream, ...).
        claims: ids of the chapter's claims whose verdict the difference can affect.
        where: dotted names of the library objects that implement our choice.
    """

    item: str
    authors: str
    ours: str
    why: str
    claims: tuple[str, ...] = ()
    where: tuple[str, ...] = ()

    def __post_init__(self):
        for name in ("item", "authors", "ours", "why"):
            if not getattr(self, name).strip():
                raise ValueError(f"a deviation needs a non-empty {name!r}")
        if "@" not in self.authors:
            raise ValueError(
                f"deviation {self.item!r}: say where the authors' setting was read "
                "(repository@commit and path)"
            )

    def as_row(self) -> dict[str, str]:
        """The deviation as a row of a chapter's Fidelity table."""
        return {
            "item": self.item,
            "authors' code": self.authors,
            "ours": self.ours,
            "why": self.why,
            "claims it can affect": ", ".join(self.claims) or "none",
        }
