"""Small models the project trained itself, shipped in ``artifacts/`` with their provenance.

An artifact is ``artifacts/<name>.safetensors`` plus ``artifacts/<name>.provenance.json``:
how it was made (command, commit, data checksums, steps, wall time, device, final metrics)
and the sha256 of the weights file, which :func:`load_artifact` verifies before use.
Training scripts call :func:`save_artifact`; chapters call :func:`load_artifact`.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from . import runtime
from .data.registry import sha256_file

ARTIFACTS_DIR = runtime.REPO_ROOT / "artifacts"
REQUIRED_PROVENANCE = ("command", "data_checksums", "wall_time_s", "device")
_used: dict[str, str] = {}


class ArtifactError(RuntimeError):
    """A missing, tampered or badly described artifact."""


def save_artifact(name: str, tensors: dict[str, torch.Tensor], provenance: dict,
                  directory: Path = ARTIFACTS_DIR) -> Path:
    """Write ``tensors`` as safetensors and the provenance record beside them; return the weights path.

    ``provenance`` must hold at least ``command``, ``data_checksums``, ``wall_time_s`` and
    ``device``; the commit, package versions, file size and sha256 are added here.
    """
    missing = [key for key in REQUIRED_PROVENANCE if key not in provenance]
    if missing:
        raise ArtifactError(f"provenance of {name!r} lacks {', '.join(missing)}")
    directory.mkdir(parents=True, exist_ok=True)
    weights = directory / f"{name}.safetensors"
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(weights))
    weights.chmod(0o644)  # safetensors writes owner-only files
    record = {"name": name, **provenance, "git_commit": runtime.git_commit(),
              "versions": runtime.package_versions(), "created_at": dt.datetime.now(dt.timezone.utc).isoformat(
                  timespec="seconds"), "file": weights.name, "size": weights.stat().st_size,
              "sha256": sha256_file(weights)}
    (directory / f"{name}.provenance.json").write_text(json.dumps(record, indent=2) + "\n")
    return weights


def artifact_provenance(name: str, directory: Path = ARTIFACTS_DIR) -> dict:
    """The provenance record of artifact ``name``."""
    path = directory / f"{name}.provenance.json"
    if not path.exists():
        known = sorted(p.name.removesuffix(".provenance.json") for p in directory.glob("*.provenance.json"))
        raise ArtifactError(f"no artifact {name!r} in {directory}; known artifacts: {', '.join(known) or 'none'}")
    return json.loads(path.read_text())


def load_artifact(name: str, directory: Path = ARTIFACTS_DIR) -> dict[str, torch.Tensor]:
    """Verify the artifact's sha256 against its provenance record, then load its tensors (CPU)."""
    record = artifact_provenance(name, directory)
    weights = directory / record["file"]
    if not weights.exists():
        raise ArtifactError(f"{weights} is missing; regenerate it with: {record['command']}")
    actual = sha256_file(weights)
    if actual != record["sha256"]:
        raise ArtifactError(f"checksum mismatch for {weights}: expected {record['sha256']}, got {actual}; "
                            f"regenerate it with: {record['command']}")
    _used[f"artifacts/{record['file']}"] = actual
    return load_file(str(weights))


def load_trained_artifact(name: str, recipe: dict, seed: int, directory: Path = ARTIFACTS_DIR
                          ) -> dict[str, torch.Tensor]:
    """:func:`load_artifact` for a model a chapter would otherwise train itself with ``recipe`` and ``seed``.

    Its training script stores both in the provenance (keys ``recipe`` and ``seed``); a model
    trained with other settings than the chapter's profile is refused, naming the difference.
    """
    record = artifact_provenance(name, directory)
    expected, found = {"recipe": recipe, "seed": seed}, {"recipe": record.get("recipe"), "seed": record.get("seed")}
    if found != expected:
        raise ArtifactError(f"artifact {name} was trained with {found}, but this profile and seed need {expected}; "
                            f"retrain it with: {record['command']}")
    return load_artifact(name, directory)


def used_artifacts() -> dict[str, str]:
    """``path -> sha256`` of every artifact loaded in this process (for the results record)."""
    return dict(_used)
