"""Small models the project trained itself, shipped in ``artifacts/`` with their provenance.

An artifact is ``artifacts/<name>.safetensors`` plus ``artifacts/<name>.provenance.json``:
how it was made and the sha256 of the weights file, which :func:`load_artifact` verifies
before use. Recipes (:mod:`backdoorbook.recipes`) describe what they made with the one
record builder, :func:`provenance`, and write it with :func:`save_artifact`; chapters call
:func:`load_artifact`, or :func:`load_or_train` where a profile may train the model in the
chapter instead.
"""

from __future__ import annotations

import ast
import datetime as dt
import hashlib
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from . import runtime
from .data.registry import sha256_file, used_checksums

ARTIFACTS_DIR = runtime.REPO_ROOT / "artifacts"
SOURCE_ROOT = Path(__file__).resolve().parents[1]
REQUIRED_PROVENANCE = ("command", "data_checksums", "wall_time_s", "device")
_used: dict[str, str] = {}
_seeds: dict[str, int | None] = {}


class ArtifactError(RuntimeError):
    """A missing, tampered or badly described artifact."""


def loaded_sources(package: str = "backdoorbook") -> list[Path]:
    """Every source file of ``package`` loaded in this process (the code that ran), sorted."""
    paths = {
        Path(module.__file__).resolve()
        for name, module in list(sys.modules.items())
        if (name == package or name.startswith(package + ".")) and getattr(module, "__file__", None)
    }
    return sorted(paths)


def code_fingerprint(source: str) -> str:
    """sha256 of a module's syntax tree without docstrings: unchanged by formatting and prose
    edits."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            if isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return hashlib.sha256(ast.dump(tree).encode()).hexdigest()


def source_hashes(paths: list[Path]) -> tuple[dict[str, str], dict[str, str]]:
    """``(sha256 of each file's bytes, code fingerprint of each file)``, keyed by path under
    ``src/``."""
    files = {path.relative_to(SOURCE_ROOT).as_posix(): path.read_bytes() for path in paths}
    return (
        {name: hashlib.sha256(data).hexdigest() for name, data in files.items()},
        {name: code_fingerprint(data.decode()) for name, data in files.items()},
    )


def provenance(
    recipe_module: str,
    *,
    recipe: dict,
    seed: int,
    device: torch.device,
    wall_time_s: float,
    quality: dict | None = None,
    images_seen: int | None = None,
    argv: list[str] | None = None,
    commit: str | None = None,
    **fields,
) -> dict:
    """The one provenance record of a recipe's artifact (:func:`save_artifact` adds file facts).

    Args:
        recipe_module: the module that made it, e.g. ``"backdoorbook.recipes.cifar_targets"``.
        recipe: the settings that define the artifact (its recipe dataclass as a dict).
        seed, device, wall_time_s: how it ran; ``images_seen`` gives the throughput.
        quality: the testbed's measured bar (held-out scores), keyed as the recipe documents.
        argv: the command-line arguments (default ``sys.argv[1:]``).
        commit: the commit the run started from (default: the checkout's now). A recipe passes
            the commit it checked at its start, before its own artifacts changed the tree.
        fields: anything else the artifact's loader or chapter reads (e.g. a victim's trigger).

    The record also holds the commit, the sha256 and the code fingerprint
    (:func:`code_fingerprint`) of every package source file that ran, the checksums of the data
    files read and of the artifacts loaded, and the package versions.
    """
    if recipe_module == "__main__":  # run as ``python -m backdoorbook.recipes.<name>``
        recipe_module = sys.modules["__main__"].__spec__.name
    argv = sys.argv[1:] if argv is None else argv
    sources, fingerprints = source_hashes(loaded_sources())
    record = {
        "recipe_module": recipe_module,
        "command": " ".join(["python -m", recipe_module, *argv]),
        "commit": commit or runtime.git_commit(),
        "sources": sources,
        "code_fingerprints": fingerprints,
        "data_checksums": used_checksums(),
        "artifacts_used": used_artifacts(),
        "recipe": recipe,
        "seed": seed,
        "device": runtime.describe_device(device),
        "threads": torch.get_num_threads(),
        "wall_time_s": round(wall_time_s, 1),
        "quality": quality or {},
    }
    if images_seen is not None:
        record["images_seen"] = images_seen
        record["images_per_s"] = round(images_seen / max(wall_time_s, 1e-9), 2)
    return {**record, **fields}


def save_artifact(
    name: str, tensors: dict[str, torch.Tensor], provenance: dict, directory: Path = ARTIFACTS_DIR
) -> Path:
    """Write ``tensors`` as safetensors and the provenance record beside them; return the weights
    path.

    ``provenance`` (from :func:`provenance`) must hold at least ``command``, ``data_checksums``,
    ``wall_time_s`` and ``device``; package versions, the creation time, file size and sha256
    are added here.
    """
    missing = [key for key in REQUIRED_PROVENANCE if key not in provenance]
    if missing:
        raise ArtifactError(f"provenance of {name!r} lacks {', '.join(missing)}")
    directory.mkdir(parents=True, exist_ok=True)
    weights = directory / f"{name}.safetensors"
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(weights))
    weights.chmod(0o644)  # safetensors writes owner-only files
    record = {
        "name": name,
        **provenance,
        "versions": runtime.package_versions(),
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "file": weights.name,
        "size": weights.stat().st_size,
        "sha256": sha256_file(weights),
    }
    (directory / f"{name}.provenance.json").write_text(json.dumps(record, indent=2) + "\n")
    return weights


def artifact_provenance(name: str, directory: Path = ARTIFACTS_DIR) -> dict:
    """The provenance record of artifact ``name``; a missing or unreadable record is an
    :class:`ArtifactError`."""
    path = directory / f"{name}.provenance.json"
    if not path.exists():
        known = sorted(
            p.name.removesuffix(".provenance.json") for p in directory.glob("*.provenance.json")
        )
        raise ArtifactError(
            f"no artifact {name!r} in {directory}; known artifacts: {', '.join(known) or 'none'}"
        )
    try:
        record = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise ArtifactError(
            f"provenance record {path} is not valid JSON ({err}); restore it from the "
            "repository or rerun the recipe that made the artifact"
        ) from err
    if not isinstance(record, dict):
        raise ArtifactError(
            f"provenance record {path} holds a {type(record).__name__}, not a JSON object"
        )
    return record


def load_artifact(name: str, directory: Path = ARTIFACTS_DIR) -> dict[str, torch.Tensor]:
    """Verify the artifact's sha256 against its provenance record, then load its tensors (CPU)."""
    record = artifact_provenance(name, directory)
    weights = directory / record["file"]
    if not weights.exists():
        raise ArtifactError(f"{weights} is missing; regenerate it with: {record['command']}")
    actual = sha256_file(weights)
    if actual != record["sha256"]:
        raise ArtifactError(
            f"checksum mismatch for {weights}: expected {record['sha256']}, got {actual}; "
            f"regenerate it with: {record['command']}"
        )
    _used[f"artifacts/{record['file']}"] = actual
    _seeds[name] = record.get("seed")
    return load_file(str(weights))


def load_trained_artifact(
    name: str, recipe: dict, directory: Path = ARTIFACTS_DIR, *, remake: str | None = None
) -> dict[str, torch.Tensor]:
    """:func:`load_artifact` for a model a chapter would otherwise train itself with ``recipe``.

    The recipe that made it is stored in its provenance (key ``recipe``); a model trained with
    other settings than the chapter's profile is refused, naming the difference. The seed it was
    trained with is its own (the chapter's seed drives the chapter's randomness; the results
    record names both, see :func:`used_artifact_seeds`). ``remake``, the command that makes the
    artifact today, is named in the refusal (default: the command that made it).
    """
    record = artifact_provenance(name, directory)
    if record.get("recipe") != recipe:
        raise ArtifactError(
            f"artifact {name} was trained with the recipe {record.get('recipe')}, but this profile "
            f"needs {recipe}; retrain it with: {remake or record['command']}"
        )
    return load_artifact(name, directory)


@dataclass(frozen=True)
class Trained:
    """A model's weights and how they came to be.

    ``info`` is the artifact's provenance record when ``shipped``, otherwise the record of the
    training that just ran in this process (the same keys, so a chapter reports either alike).
    """

    state: dict[str, torch.Tensor]
    info: dict
    shipped: bool


def load_or_train(
    name: str | None,
    train: Callable[[], tuple[dict[str, torch.Tensor], dict]],
    *,
    recipe: dict | None = None,
    remake: str | None = None,
    device: torch.device | str = "cpu",
    directory: Path = ARTIFACTS_DIR,
) -> Trained:
    """Load artifact ``name`` (recipe-checked when ``recipe`` is given), or, when ``name`` is
    ``None``, run ``train() -> (state, info)`` here on ``device``. ``remake``: the command that
    makes the artifact today, named when its recipe is refused.

    A run here gets ``command`` and ``device`` in its ``info``, as a shipped record has them.
    """
    if name is None:
        state, info = train()
        here = {
            "command": "trained in this process",
            "device": runtime.describe_device(torch.device(device)),
        }
        return Trained(state, {**here, **info}, shipped=False)
    state = (
        load_artifact(name, directory)
        if recipe is None
        else load_trained_artifact(name, recipe, directory, remake=remake)
    )
    return Trained(state, artifact_provenance(name, directory), shipped=True)


def seed_variant(name: str, seed: int) -> str:
    """The name of artifact ``name`` trained under ``seed``: ``name`` itself for seed 0 (the
    shipped default), ``<name>_s<seed>`` otherwise (for artifacts cheap enough to train under
    several seeds, so that a chapter's seed also draws the model)."""
    return name if seed == 0 else f"{name}_s{seed}"


def seed_base(name: str) -> tuple[str, int]:
    """``(base name, seed)`` of a :func:`seed_variant` name (seed 0 for a name without suffix)."""
    base, sep, seed = name.rpartition("_s")
    return (base, int(seed)) if sep and seed.isdigit() else (name, 0)


def is_shipped(name: str, directory: Path = ARTIFACTS_DIR) -> bool:
    """Whether artifact ``name`` has a provenance record in ``directory``."""
    return (directory / f"{name}.provenance.json").exists()


def for_seed(name: str, seed: int, directory: Path = ARTIFACTS_DIR) -> str:
    """The variant of ``name`` trained under ``seed`` where one is shipped, else ``name`` (whose
    record names the seed it was trained with)."""
    variant = seed_variant(name, seed)
    return variant if is_shipped(variant, directory) else name


def used_artifacts() -> dict[str, str]:
    """``path -> sha256`` of every artifact loaded in this process (for the results record)."""
    return dict(_used)


def used_artifact_seeds() -> dict[str, int | None]:
    """``name -> the seed it was trained with`` for every artifact loaded in this process."""
    return dict(_seeds)
