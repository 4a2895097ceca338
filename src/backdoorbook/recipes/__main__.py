"""List every shipped artifact: its recipe, what it cost, its quality against its bar, and whether
today's source still matches the source that made it.

    python -m backdoorbook.recipes [--json]

An artifact is *stale* when the code fingerprint (:func:`backdoorbook.artifacts.code_fingerprint`)
of a source file that ran when it was made differs from today's file, or that file is gone;
*legacy* when its record predates recipes (no source hashes: it cannot be checked, and it is
rebuilt by retraining it with its recipe).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..artifacts import ARTIFACTS_DIR, SOURCE_ROOT, artifact_provenance, code_fingerprint


def staleness(record: dict, source_root: Path = SOURCE_ROOT) -> tuple[str, list[str]]:
    """``(status, changed files)``: status ``"current"``, ``"stale"`` or ``"legacy"``."""
    fingerprints = record.get("code_fingerprints")
    if not fingerprints:
        return "legacy", []
    changed = [
        name
        for name, fingerprint in sorted(fingerprints.items())
        if not (source_root / name).exists()
        or code_fingerprint((source_root / name).read_text()) != fingerprint
    ]
    return ("stale" if changed else "current"), changed


def inventory(directory: Path = ARTIFACTS_DIR) -> list[dict]:
    """One row per artifact in ``directory``: name, recipe module, cost, quality, bar, status."""
    rows = []
    for path in sorted(directory.glob("*.provenance.json")):
        name = path.name.removesuffix(".provenance.json")
        record = artifact_provenance(name, directory)
        status, changed = staleness(record)
        rows.append(
            {
                "artifact": name,
                "recipe": record.get("recipe_module") or record.get("command", "?"),
                "commit": (record.get("commit") or record.get("git_commit") or "?")[:12],
                "wall_time_s": record.get("wall_time_s"),
                "device": record.get("device"),
                "images_per_s": record.get("images_per_s"),
                "quality": record.get("quality", {}),
                "bar": record.get("quality_bar"),
                "status": status,
                "changed_sources": changed,
            }
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args(argv)
    rows = inventory()
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    for row in rows:
        cost = f"{row['wall_time_s'] / 60:.0f} min" if row["wall_time_s"] is not None else "?"
        quality = ", ".join(f"{k} {v}" for k, v in row["quality"].items()) or "not measured"
        bar = f"; bar {row['bar']}" if row["bar"] is not None else ""
        changed = f" ({', '.join(row['changed_sources'])})" if row["changed_sources"] else ""
        print(
            f"{row['artifact']}: {row['status']}{changed}\n    recipe {row['recipe']} at "
            f"{row['commit']}, {cost} on {row['device']}\n    quality: {quality}{bar}"
        )


if __name__ == "__main__":
    main()
