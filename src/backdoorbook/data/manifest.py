"""Dataset manifests (``data_manifests/<name>.yml``) and the data layer's error types.

A manifest describes one item of the data mirror: its files (path relative to a data
root, size, sha256 and, for archives, the sha256 of their decoded content), split counts,
upstream source (repository, full commit, URLs), licence, citation, how a user obtains it
and how :mod:`backdoorbook.data.fetch` rebuilds it. Loading data never downloads anything;
manifests are how the project says what it expects to find under a data root.

The manifest directory is ``$BACKDOORBOOK_MANIFESTS`` when set, otherwise the
repository's ``data_manifests/`` (found relative to this package, then by walking up
from the working directory).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

__all__ = [
    "DataError",
    "UnknownDatasetError",
    "UnknownSplitError",
    "DataRootError",
    "DataFileMissingError",
    "ChecksumMismatchError",
    "CorruptArchiveError",
    "DownloadError",
    "UpstreamFileMissingError",
    "DATASET_NAMES",
    "ManifestFile",
    "Manifest",
    "manifests_dir",
    "available_names",
    "load_manifest",
    "repo_root",
]

# --------------------------------------------------------------------------- errors


class DataError(RuntimeError):
    """Base class of every error raised by :mod:`backdoorbook.data`."""


class UnknownDatasetError(DataError, KeyError):
    """No manifest exists for the requested name."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class UnknownSplitError(DataError, ValueError):
    """The requested split is not one of the archive's split values (or ``"all"``)."""


class DataRootError(DataError):
    """``BACKDOORBOOK_DATA`` is unset/empty or none of its roots exists."""


class DataFileMissingError(DataError, FileNotFoundError):
    """A manifest's file is in none of the data roots."""

    def __str__(self) -> str:  # OSError would format (errno, strerror)
        return str(self.args[0]) if self.args else ""


class ChecksumMismatchError(DataError):
    """A file's sha256 differs from its manifest."""


class CorruptArchiveError(DataError):
    """An archive is not a readable zip, or its index/members are malformed."""


class DownloadError(DataError):
    """Fetching an upstream file failed (network, HTTP status); names the URL and the item."""


class UpstreamFileMissingError(DataError):
    """A file the packing rules need is absent from the downloaded upstream archive."""


# ------------------------------------------------------------------------ manifests

#: The seven items of the data mirror, sorted.
DATASET_NAMES: tuple[str, ...] = (
    "camvid",
    "cifar10",
    "cifar10_resnets",
    "gtsrb",
    "imagenette",
    "miniimagenet",
    "weizmann_horse",
)

KINDS = ("classification", "segmentation", "checkpoints")
_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class ManifestFile:
    """One file of a manifest: ``path`` is relative to a data root.

    ``content_sha256`` (archives only) is the checksum of the archive's decoded content
    (see :mod:`backdoorbook.data.content`): a rebuilt archive whose bytes differ (other
    Pillow, zlib or libjpeg) is accepted when it matches.
    """

    path: str
    size: int
    sha256: str
    content_sha256: str | None = None


@dataclass(frozen=True)
class Manifest:
    """Parsed ``data_manifests/<name>.yml``."""

    name: str
    kind: str
    description: str
    files: list[ManifestFile]
    splits: dict[str, int]
    upstream: dict
    licence: str
    citation: list[str]  # BibTeX keys (a bare key in the YAML becomes a one-item list)
    obtain: str
    manifest_path: Path
    extra: dict = field(default_factory=dict)

    def file(self, relpath: str) -> ManifestFile:
        """The entry for ``relpath`` (exact path, ``<name>/relpath`` or a unique basename)."""
        rel = relpath.replace("\\", "/").lstrip("/")
        for cand in (rel, f"{self.name}/{rel}"):
            for f in self.files:
                if f.path == cand:
                    return f
        hits = [f for f in self.files if f.path.rsplit("/", 1)[-1] == rel]
        if len(hits) == 1:
            return hits[0]
        listed = ", ".join(f.path for f in self.files)
        raise DataError(
            f"{relpath!r} is not a file of dataset {self.name!r} "
            f"(manifest {self.manifest_path} lists: {listed})"
        )

    def archive(self) -> ManifestFile:
        """The dataset's single ``.zip`` file."""
        zips = [f for f in self.files if f.path.endswith(".zip")]
        if len(zips) != 1:
            raise DataError(
                f"manifest {self.manifest_path} must list exactly one .zip for a "
                f"{self.kind} dataset, found {len(zips)}"
            )
        return zips[0]


def repo_root() -> Path | None:
    """The project checkout holding ``data_manifests/`` (None if not found)."""
    here = Path(__file__).resolve()
    for parent in list(here.parents) + list(Path.cwd().resolve().parents) + [Path.cwd().resolve()]:
        if (parent / "data_manifests").is_dir() and (parent / "pyproject.toml").is_file():
            return parent
    return None


def manifests_dir() -> Path:
    """Directory of the ``<name>.yml`` manifests (``$BACKDOORBOOK_MANIFESTS`` overrides)."""
    env = os.environ.get("BACKDOORBOOK_MANIFESTS", "").strip()
    if env:
        return Path(env).expanduser().resolve()
    root = repo_root()
    if root is None:
        raise DataError(
            "cannot find the data_manifests/ directory: set BACKDOORBOOK_MANIFESTS "
            "to the project's data_manifests folder"
        )
    return root / "data_manifests"


def available_names() -> tuple[str, ...]:
    """Names with a manifest in :func:`manifests_dir` (sorted)."""
    try:
        d = manifests_dir()
    except DataError:
        return ()
    if not d.is_dir():
        return ()
    return tuple(sorted(p.stem for p in d.glob("*.yml")))


def _unknown(name: object) -> UnknownDatasetError:
    valid = sorted(set(DATASET_NAMES) | set(available_names()))
    return UnknownDatasetError(f"unknown dataset {name!r}; valid names: {', '.join(valid)}")


def _bad(path: Path, why: str) -> DataError:
    return DataError(f"malformed manifest {path}: {why}")


def load_manifest(name: str) -> Manifest:
    """Read and validate ``<manifests_dir>/<name>.yml``.

    Raises :class:`UnknownDatasetError` (listing the valid names) when there is none.
    """
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise _unknown(name)
    path = manifests_dir() / f"{name}.yml"
    if not path.is_file():
        raise _unknown(name)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise _bad(path, f"not valid YAML ({exc})") from exc
    if not isinstance(raw, dict):
        raise _bad(path, "top level must be a mapping")
    required = ("name", "kind", "description", "files", "licence", "citation", "obtain")
    missing = [k for k in required if k not in raw]
    if missing:
        raise _bad(path, f"missing field(s) {', '.join(missing)}")
    if raw["name"] != name:
        raise _bad(path, f"name is {raw['name']!r}, expected {name!r}")
    if raw["kind"] not in KINDS:
        raise _bad(path, f"kind {raw['kind']!r} not one of {', '.join(KINDS)}")
    files = []
    for i, f in enumerate(raw["files"] or []):
        try:
            content = f.get("content_sha256")
            mf = ManifestFile(
                path=str(f["path"]),
                size=int(f["size"]),
                sha256=str(f["sha256"]).lower(),
                content_sha256=None if content is None else str(content).lower(),
            )
        except (TypeError, KeyError, ValueError, AttributeError) as exc:
            raise _bad(path, f"files[{i}] needs path, size and sha256") from exc
        for key in ("sha256", "content_sha256"):
            value = getattr(mf, key)
            if value is not None and not _SHA_RE.match(value):
                raise _bad(path, f"files[{i}].{key} is not 64 hex digits")
        files.append(mf)
    if not files:
        raise _bad(path, "files is empty")
    splits = {str(k): int(v) for k, v in (raw.get("splits") or {}).items()}
    cites = raw["citation"]
    cites = [cites] if isinstance(cites, str) else cites
    if not isinstance(cites, list) or not cites or not all(isinstance(c, str) and c for c in cites):
        raise _bad(path, "citation must be a BibTeX key or a list of keys")
    known = set(required) | {"splits", "upstream"}
    return Manifest(
        name=name,
        kind=raw["kind"],
        description=str(raw["description"]).strip(),
        files=files,
        splits=splits,
        upstream=raw.get("upstream") or {},
        licence=str(raw["licence"]).strip(),
        citation=list(cites),
        obtain=str(raw["obtain"]).strip(),
        manifest_path=path,
        extra={k: v for k, v in raw.items() if k not in known},
    )
