"""The testbed a chapter stands on: each shipped artifact it loads, the quality its recipe
measured on held-out data beside the bar, and what it cost to make.

The bars and measures are those of the testbed issue (``quality`` and ``quality_bar`` in each
artifact's provenance, written by :mod:`backdoorbook.recipes`); every bar is a minimum. An
artifact made before the recipes has no ``quality``: its row says so, so that a chapter never
shows a bar as met that nobody measured.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable

import pandas as pd

from ..artifacts import ARTIFACTS_DIR, artifact_provenance


def quality_bars(record: dict) -> dict[str, float]:
    """``{quality key: minimum}`` from a provenance record (a bare number bars
    ``test_accuracy``, as chapter 6's targets record it). A record made before its recipe stated
    bars gets today's ``QUALITY_BARS`` of its recipe module, where those name its measures."""
    bar = record.get("quality_bar")
    if bar is None:
        module = record.get("recipe_module")
        today = getattr(importlib.import_module(module), "QUALITY_BARS", {}) if module else {}
        measured = record.get("quality") or {}
        return dict(today) if today and set(today) <= set(measured) else {}
    return {"test_accuracy": float(bar)} if isinstance(bar, int | float) else dict(bar)


def _made_by(record: dict) -> str:
    module, commit = record.get("recipe_module"), str(record.get("commit", ""))[:12]
    if module:
        return f"python -m {module} at {commit}"
    return "made before the recipes (no recorded commit)"


def _cost(record: dict) -> str:
    minutes = record.get("wall_time_s", 0) / 60
    return f"{minutes:.0f} min on {record.get('device', 'an unrecorded device')}"


def artifact_quality_table(names: Iterable[str], directory=ARTIFACTS_DIR) -> pd.DataFrame:
    """One row per bar of each artifact in ``names``: the measured value, the bar, whether it is
    met; the artifact's other measures (and their counts) in ``also measured``; the recipe and
    commit that made it and the training cost. An artifact without bars gets one row (measure
    ``—``), whose ``also measured`` says "not measured" when it has no ``quality`` at all."""
    rows = []
    for name in dict.fromkeys(names):
        record = artifact_provenance(name, directory)
        quality, bars = record.get("quality") or {}, quality_bars(record)
        others = ", ".join(f"{k} {v:g}" for k, v in quality.items() if k not in bars) or (
            "not measured" if not quality else ""
        )
        base = {"also measured": others, "made by": _made_by(record), "training": _cost(record)}
        if not bars:
            rows.append({"artifact": name, "measure": "—", "value": None, "bar": None, "met": "—"})
            rows[-1] |= base
        for key, bar in bars.items():
            value = quality.get(key)
            met = "not measured" if value is None else ("met" if value >= bar else "not met")
            rows.append(
                {"artifact": name, "measure": key, "value": value, "bar": bar, "met": met} | base
            )
    columns = ["artifact", "measure", "value", "bar", "met", "also measured", "made by", "training"]
    return pd.DataFrame(rows, columns=columns).set_index(["artifact", "measure"])


def bar_summary(table: pd.DataFrame) -> str:
    """One sentence from :func:`artifact_quality_table`: how many bars are met, each bar that is
    not (value against bar, and what the training cost), and the artifacts with no measure."""
    barred = table[table["met"] != "—"]
    unmet = barred[barred["met"] != "met"]
    parts = []
    if barred.empty:
        parts.append("No artifact here records a bar.")
    elif unmet.empty:
        parts.append(f"All {len(barred)} bars are met.")
    else:
        missed = "; ".join(
            f"{artifact} {measure} {row['value'] if row['value'] is not None else 'unmeasured'}"
            f" against {row['bar']:g} ({row['training']})"
            for (artifact, measure), row in unmet.iterrows()
        )
        parts.append(f"{len(unmet)} of {len(barred)} bars not met: {missed}.")
    unmeasured = [a for (a, _), row in table.iterrows() if row["also measured"] == "not measured"]
    if unmeasured:
        parts.append(f"No recorded measure: {', '.join(unmeasured)}.")
    return " ".join(parts)
