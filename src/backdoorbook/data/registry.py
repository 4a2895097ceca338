"""Finding and verifying the mirror's files under the data roots.

``BACKDOORBOOK_DATA`` holds one or more data roots separated by ``os.pathsep``; a
manifest's file is taken from the first root that has it. Relative roots resolve against
the working directory, then against the project checkout (so ``../shared/data`` works
from a notebook folder too). Every file's sha256 is checked against its manifest before
its first use in a process; the result is memoised per path (and size/mtime) and recorded
for :func:`used_checksums`. An archive that :mod:`.fetch` rebuilt with different bytes but
the manifest's decoded content carries a record beside it (:data:`CONTENT_RECORD_SUFFIX`)
and is accepted while its bytes are those recorded. Nothing is downloaded here; missing
items are fetched only on request (``make data``, ``python -m backdoorbook.data fetch``).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path

from .manifest import (
    ChecksumMismatchError,
    DataError,
    DataFileMissingError,
    DataRootError,
    ManifestFile,
    load_manifest,
    repo_root,
)

__all__ = [
    "data_roots",
    "locate",
    "used_checksums",
    "sha256_file",
    "content_verified",
    "load_classes_json",
    "load_classes",
]

ENV_DATA = "BACKDOORBOOK_DATA"
#: Beside ``<item>.zip``: JSON ``{"sha256", "content_sha256"}`` written by the fetcher.
CONTENT_RECORD_SUFFIX = ".content-verified.json"

_LOCK = threading.Lock()
_VERIFIED: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> sha256
_USED: dict[str, str] = {}  # manifest relpath -> sha256


def _configured_roots() -> list[tuple[str, Path]]:
    """Every root in ``$BACKDOORBOOK_DATA`` as (as written, resolved path)."""
    raw = os.environ.get(ENV_DATA, "")
    out = []
    for item in raw.split(os.pathsep):
        item = item.strip()
        if not item:
            continue
        p = Path(item).expanduser()
        if not p.is_absolute() and not p.is_dir():
            root = repo_root()
            if root is not None and (root / p).is_dir():
                p = root / p
        out.append((item, p.resolve()))
    return out


def data_roots() -> list[Path]:
    """The existing data roots from ``$BACKDOORBOOK_DATA``, in search order."""
    configured = _configured_roots()
    if not configured:
        raise DataRootError(
            f"no data root: set {ENV_DATA} to the data mirror folder, e.g. "
            f"`export {ENV_DATA}=../shared/data` (several roots separated by "
            f"{os.pathsep!r}), or fetch the data with `make data` "
            f"(python -m backdoorbook.data fetch --root DIR)."
        )
    roots = [p for _, p in configured if p.is_dir()]
    if not roots:
        listed = ", ".join(f"{raw} -> {p}" for raw, p in configured)
        raise DataRootError(
            f"none of the data roots in {ENV_DATA} exists ({listed}); point {ENV_DATA} "
            f"at the data mirror folder, e.g. ../shared/data"
        )
    return roots


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    """Hex sha256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def content_verified(path: Path, actual: str, entry: ManifestFile) -> bool:
    """True if the fetcher accepted exactly these bytes (``actual`` sha256) by decoded content."""
    record = path.with_name(path.name + CONTENT_RECORD_SUFFIX)
    if entry.content_sha256 is None or not record.is_file():
        return False
    try:
        rec = json.loads(record.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        return False
    return rec.get("sha256") == actual and rec.get("content_sha256") == entry.content_sha256


def _verify(path: Path, entry: ManifestFile, manifest_path: Path) -> None:
    relpath, expected = entry.path, entry.sha256
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    with _LOCK:
        actual = _VERIFIED.get(key)
    if actual is None:
        actual = sha256_file(path)
        with _LOCK:
            _VERIFIED[key] = actual
    if actual != expected and not content_verified(path, actual, entry):
        raise ChecksumMismatchError(
            f"checksum mismatch for {path} ({relpath}): expected sha256 {expected}, "
            f"actual {actual}. The file differs from the one described in {manifest_path}; "
            f"replace it with the mirrored copy (see 'obtain' in that manifest)."
        )
    with _LOCK:
        _USED[relpath] = actual


def locate(name: str, relpath: str) -> Path:
    """Path of a manifest file in the first data root that has it, sha256-verified.

    ``relpath`` is the manifest's path (``cifar10/cifar10.zip``); a path relative to the
    dataset folder (``cifar10.zip``) is accepted too.
    """
    manifest = load_manifest(name)
    entry = manifest.file(relpath)
    roots = data_roots()
    for root in roots:
        cand = root / entry.path
        if cand.is_file():
            _verify(cand, entry, manifest.manifest_path)
            return cand
    searched = "\n".join(f"  - {r / entry.path}" for r in roots)
    skipped = [p for _, p in _configured_roots() if not p.is_dir()]
    if skipped:
        searched += "\n" + "\n".join(f"  - {p} (root does not exist)" for p in skipped)
    raise DataFileMissingError(
        f"dataset {name!r}: file {entry.path} (sha256 {entry.sha256}) is in none of the "
        f"data roots searched:\n{searched}\nSee {manifest.manifest_path} ('obtain') for "
        f"how to obtain it, or rebuild it from its upstream with "
        f"`python -m backdoorbook.data fetch {name} --root DIR`."
    )


def used_checksums() -> dict[str, str]:
    """``relpath -> sha256`` of every file verified in this process (for results records)."""
    with _LOCK:
        return dict(sorted(_USED.items()))


def load_classes_json(name: str) -> dict:
    """The raw ``<name>/classes.json`` of a dataset (verified)."""
    manifest = load_manifest(name)
    entry = next((f for f in manifest.files if f.path.endswith("classes.json")), None)
    if entry is None:
        raise DataError(f"dataset {name!r} has no classes.json ({manifest.manifest_path})")
    path = locate(name, entry.path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:  # pragma: no cover - sha256 guards this
        raise DataError(f"{path} is not valid JSON: {exc}") from exc


def load_classes(name: str) -> list[str]:
    """Human-readable class names, in label order.

    ``classes.json`` shapes differ: ``{"classes": [...]}`` (cifar10, camvid,
    weizmann_horse) or with a ``"names"`` list (gtsrb, imagenette; miniimagenet, whose
    ``"classes"`` are wnids). ``"names"`` wins when present.
    """
    raw = load_classes_json(name)
    names = raw.get("names", raw.get("classes"))
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise DataError(f"classes.json of {name!r} has no list of class names")
    return list(names)
