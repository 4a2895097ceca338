"""Claims: an effect computed from the run, its 95 % interval, a threshold fixed in code, a verdict.

A claim's rule is one or more :class:`Criterion`: an :class:`~.intervals.Interval` (the effect,
e.g.
"ASR minus the clean model's ASR, paired over the same images") compared with a threshold in
a direction (``"at least"`` or ``"at most"``). A criterion's verdict is

- ``reproduced`` when the whole interval clears the threshold,
- ``not reproduced`` when the whole interval falls short of it,
- ``inconclusive`` when the interval straddles it.

A claim with several criteria (an ordering, or "high ASR *and* little loss of CA") is reproduced
when every criterion is, not reproduced when any is not, and inconclusive otherwise; its
record carries every criterion and, as its headline, the criterion that decided the verdict.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from .intervals import Interval

VERDICTS = ("reproduced", "not reproduced", "inconclusive")
DIRECTIONS = ("at least", "at most")
SOURCE_TAGS = ("[code]", "[abs]", "[review]", "[3p]", "[?]")


@dataclass(frozen=True)
class Criterion:
    """One comparison of an effect with a threshold fixed before the run.

    Attributes:
        measure: what the effect is, in words, with its unit.
        effect: the estimate and its 95 % interval.
        threshold: the bar, in the effect's unit.
        direction: ``"at least"`` (the effect must reach the threshold) or ``"at most"``.
    """

    measure: str
    effect: Interval
    threshold: float
    direction: str = "at least"

    def __post_init__(self):
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {self.direction!r}")

    @property
    def verdict(self) -> str:
        low, high = self.effect.low, self.effect.high
        if self.direction == "at least":
            return (
                "reproduced"
                if low >= self.threshold
                else ("not reproduced" if high < self.threshold else "inconclusive")
            )
        return (
            "reproduced"
            if high <= self.threshold
            else ("not reproduced" if low > self.threshold else "inconclusive")
        )

    @property
    def margin(self) -> float:
        """How far the interval's near end clears the threshold (negative: it does not)."""
        if self.direction == "at least":
            return self.effect.low - self.threshold
        return self.threshold - self.effect.high

    def as_dict(self) -> dict:
        return {
            "measure": self.measure,
            "effect": self.effect.value,
            "ci_low": self.effect.low,
            "ci_high": self.effect.high,
            "n": self.effect.n,
            "threshold": self.threshold,
            "direction": self.direction,
            "verdict": self.verdict,
        }


def combined_verdict(verdicts: Sequence[str]) -> str:
    """All reproduced: reproduced; any not reproduced: not reproduced; otherwise inconclusive."""
    if not verdicts:
        raise ValueError("a claim needs at least one criterion")
    if "not reproduced" in verdicts:
        return "not reproduced"
    return "reproduced" if all(v == "reproduced" for v in verdicts) else "inconclusive"


@dataclass(frozen=True)
class Claim:
    """One checked claim, as it goes into the results record and the scorecard.

    Attributes:
        id: short slug, unique within the chapter.
        statement: the claim in words, as the paper (or survey) makes it.
        rule: the rule applied to our numbers, in words, with its thresholds.
        ours: our figures, as text, from this run.
        verdict: one of :data:`VERDICTS`.
        effect, ci_low, ci_high, threshold, n, measure, direction: the deciding criterion.
        criteria: every criterion of the rule (see :class:`Criterion`).
        paper: the paper's figure where one is known, else ``None``; source: its tag.
        note: a caveat a reader needs, computed from the run (or empty).
    """

    id: str
    statement: str
    rule: str
    ours: str
    verdict: str
    effect: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    threshold: float | None = None
    n: int | None = None
    measure: str | None = None
    direction: str | None = None
    criteria: list[dict] = field(default_factory=list)
    paper: str | None = None
    source: str | None = None
    note: str = ""

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")
        if self.source is not None and self.source not in SOURCE_TAGS:
            raise ValueError(f"source tag must be one of {SOURCE_TAGS}, got {self.source!r}")
        if not self.criteria:
            raise ValueError(
                "a claim is decided by at least one criterion with its interval (make_claim)"
            )
        if self.effect is None:
            raise ValueError("a claim with criteria carries its deciding effect")
        if (self.paper is None) != (self.source is None):
            raise ValueError(
                "a paper figure needs a source tag and a source tag needs a paper figure"
            )

    def as_dict(self) -> dict:
        return asdict(self)


def make_claim(
    id: str,
    statement: str,
    criteria: Criterion | Sequence[Criterion],
    *,
    rule: str,
    ours: str,
    paper: str | None = None,
    source: str | None = None,
    note: str = "",
) -> Claim:
    """A :class:`Claim` whose verdict combines ``criteria``; the headline is the deciding one
    (the first that is not reproduced, else the first inconclusive, else the narrowest margin)."""
    criteria = [criteria] if isinstance(criteria, Criterion) else list(criteria)
    verdict = combined_verdict([c.verdict for c in criteria])
    if verdict == "reproduced":
        head = min(criteria, key=lambda c: c.margin)
    else:
        head = next(c for c in criteria if c.verdict == verdict)
    return Claim(
        id=id,
        statement=statement,
        rule=rule,
        ours=ours,
        verdict=verdict,
        effect=head.effect.value,
        ci_low=head.effect.low,
        ci_high=head.effect.high,
        threshold=head.threshold,
        n=head.effect.n,
        measure=head.measure,
        direction=head.direction,
        criteria=[c.as_dict() for c in criteria],
        paper=paper,
        source=source,
        note=note,
    )
