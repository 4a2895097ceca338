"""Chapter results records and claim checks.

Every chapter opens a :class:`ChapterRun` in its first code cell and closes it in its last;
closing writes a JSON results record (chapter, profile, device, seed, git commit, data
and artifact checksums, wall time, peak memory, package versions, metrics and claims). The book's
scorecard and execution report are built from these records (:mod:`backdoorbook.book.report`).

A claim's verdict comes from this run's numbers only: each chapter's rules
(:mod:`backdoorbook.claims`) compare an effect's 95 % interval with a threshold fixed in code
before the experiment runs (:func:`backdoorbook.claims.core.make_claim`).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .. import runtime
from ..claims.core import Claim
from ..fidelity import Deviation
from .profiles import get_profile, profile_as_dict

RESULTS_ENV = "BACKDOORBOOK_RESULTS"


def results_dir() -> Path:
    """Where records go: ``$BACKDOORBOOK_RESULTS`` (set by the book build) or ``results/``."""
    return Path(os.environ.get(RESULTS_ENV) or runtime.REPO_ROOT / "results")


def to_jsonable(value):
    """Convert tensors, NumPy values and tuples inside ``value`` to plain JSON types."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, torch.Tensor):
        return to_jsonable(value.detach().cpu().tolist())
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


@dataclass
class ChapterRun:
    """A chapter's run: seeds, device and threads on entry; the results record on :meth:`finish`.

    Args:
        chapter: the chapter's stem, e.g. ``"00_data"`` (also its profile key).
        title: the chapter's title for the scorecard.
        profile: profile name (``"ci"`` or ``"paper"``), injected by papermill.
        seed: the seed for Python, NumPy and torch.
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"mps"``.

    The profile's ``threads`` sets torch's intra-op threads (``None``: every core available).
    """

    chapter: str
    title: str
    profile: str = "ci"
    seed: int = 0
    device: str = "auto"
    metrics: dict = field(default_factory=dict)
    claims: list[Claim] = field(default_factory=list)
    fidelity: list[Deviation] = field(default_factory=list)
    fidelity_shown: bool = False

    def __post_init__(self):
        self.settings = get_profile(self.chapter, self.profile)
        runtime.seed_everything(self.seed)
        self.threads = runtime.set_threads(self.settings.threads)
        self.torch_device = runtime.choose_device(self.device)
        # numpy 2 writes a scalar as ``np.float64(10.2)``; myst-nb's glue formats (``:.1f``) the
        # text/plain of a glued value, so numpy scalars must print as bare numbers
        np.set_printoptions(legacy="1.25")
        self._started = time.perf_counter()
        self._started_at = _dt.datetime.now(_dt.UTC)

    def add_claim(self, claim: Claim) -> Claim:
        """Record ``claim``; ids must be unique within the chapter."""
        if any(c.id == claim.id for c in self.claims):
            raise ValueError(f"duplicate claim id {claim.id!r}")
        self.claims.append(claim)
        return claim

    def add_fidelity(self, *declarations: tuple[Deviation, ...]) -> pd.DataFrame:
        """Record the ``DEVIATIONS`` of the method modules this chapter runs; return its Fidelity
        table (one row per deviation)."""
        for deviations in declarations:
            self.fidelity.extend(d for d in deviations if d not in self.fidelity)
        self.fidelity_shown = True
        return fidelity_table(self.fidelity)

    @property
    def fidelity_label(self) -> str:
        """The MyST label of the chapter's Fidelity section, ``(fidelity-<chapter>)=``."""
        return f"fidelity-{self.chapter}"

    def record(self) -> dict:
        """The results record as a JSON-ready dict.

        Every claim a declared deviation names must be one of the chapter's claims.
        """
        known = {c.id for c in self.claims}
        unknown = sorted({c for d in self.fidelity for c in d.claims} - known)
        if unknown:
            raise ValueError(f"deviations name claims this chapter does not make: {unknown}")
        from ..artifacts import used_artifact_seeds, used_artifacts
        from ..data import used_checksums  # the data layer records every file it verified

        return {
            "chapter": self.chapter,
            "title": self.title,
            "profile": self.profile,
            "profile_settings": profile_as_dict(self.settings),
            "seed": self.seed,
            "device": runtime.describe_device(self.torch_device),
            "threads": self.threads,
            "git_commit": runtime.git_commit(),
            "started_at": self._started_at.isoformat(timespec="seconds"),
            "wall_time_s": round(time.perf_counter() - self._started, 2),
            "peak_memory_mb": round(runtime.peak_memory_mb(), 1),
            "peak_gpu_memory_mb": runtime.peak_gpu_memory_mb(),
            "versions": runtime.package_versions(),
            "data_checksums": used_checksums(),
            "artifact_checksums": used_artifacts(),
            "artifact_seeds": used_artifact_seeds(),
            "metrics": to_jsonable(self.metrics),
            "claims": [asdict(c) for c in self.claims],
            "fidelity": [asdict(d) for d in self.fidelity],
            "fidelity_label": self.fidelity_label if self.fidelity_shown else None,
        }

    def finish(self, directory: Path | None = None) -> Path:
        """Write the record to ``<directory>/<chapter>.json`` and return its path, relative to
        the checkout when it lies inside (a chapter prints it; a page shows no machine path)."""
        directory = Path(directory) if directory is not None else results_dir()
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{self.chapter}.json"
        path.write_text(json.dumps(self.record(), indent=2, sort_keys=False) + "\n")
        resolved = path.resolve()
        return (
            resolved.relative_to(runtime.REPO_ROOT)
            if resolved.is_relative_to(runtime.REPO_ROOT)
            else path
        )


def fidelity_table(deviations: list[Deviation]) -> pd.DataFrame:
    """A chapter's Fidelity table: the declared deviations, one row each (empty if none)."""
    columns = ["item", "authors' code", "ours", "why", "claims it can affect"]
    return pd.DataFrame([d.as_row() for d in deviations], columns=columns).set_index("item")


def load_records(directory: Path | None = None) -> list[dict]:
    """All results records in ``directory``, sorted by chapter."""
    directory = Path(directory) if directory is not None else results_dir()
    records = [json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))]
    for rec in records:
        for claim in rec.get("claims", []):
            Claim(**claim)  # validates verdicts and source tags of records written elsewhere
    return sorted(records, key=lambda r: r["chapter"])
