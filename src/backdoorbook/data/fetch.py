"""``make data``: rebuild the mirror's items from their pinned upstreams, verified.

For each item (``data_manifests/<item>.yml``), :func:`fetch` makes a data root hold its
files (default root :data:`DEFAULT_ROOT`, ``~/.cache/backdoorbook/data``):

1. An item whose files are already there and verify is left alone: a verified file is
   never rewritten. (A file that does not verify is replaced by a verified rebuild.)
2. ``checkpoints`` items: each file is downloaded from ``upstream.files`` (raw files at the
   pinned commit) and checked against its manifest sha256 (:mod:`.download`).
3. Archive items: the GitHub archive at ``upstream.url`` (the repository at its pinned full
   commit) is downloaded into ``<root>/.downloads/`` (resumable), ``<item>.zip`` is rebuilt
   from it in a temporary file by the item's recipe (:mod:`.packing`) and verified, then moved
   into place; ``classes.json`` is written from the manifest's ``classes_json`` and checked
   against its sha256; the download is deleted.
4. Verification of a rebuilt archive: its sha256 must equal the manifest's or, where the
   bytes of re-encoded members differ (other Pillow, zlib or libjpeg), its decoded content
   must match ``content_sha256`` (:mod:`.content`). A record beside the archive
   (:data:`.registry.CONTENT_RECORD_SUFFIX`) then lets the loaders accept exactly those
   bytes. Otherwise :class:`ChecksumMismatchError` names the file, the expected and the
   actual checksums; neither the archive nor the download it came from is kept.

:func:`ensure` is what ``make book`` runs first: it fetches only the items that no root in
``$BACKDOORBOOK_DATA`` holds, into the first of those roots (or the default root).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from .content import content_sha256
from .download import download
from .manifest import (
    DATASET_NAMES,
    ChecksumMismatchError,
    CorruptArchiveError,
    DataError,
    Manifest,
    ManifestFile,
    load_manifest,
)
from .packing import RECIPES, Upstream, write_archive
from .registry import (
    CONTENT_RECORD_SUFFIX,
    ENV_DATA,
    _configured_roots,
    content_verified,
    sha256_file,
)

__all__ = ["DEFAULT_ROOT", "fetch", "ensure", "holds"]

DEFAULT_ROOT = Path.home() / ".cache" / "backdoorbook" / "data"
DOWNLOADS = ".downloads"


def _say(message: str) -> None:
    print(message, flush=True)


def _record(path: Path) -> Path:
    return path.with_name(path.name + CONTENT_RECORD_SUFFIX)


def _verified(root: Path, entry: ManifestFile) -> bool:
    path = root / entry.path
    if not path.is_file():
        return False
    actual = sha256_file(path)
    return actual == entry.sha256 or content_verified(path, actual, entry)


def holds(root: Path, manifest: Manifest) -> bool:
    """Whether ``root`` has every file of the item, a quick check (the loaders verify sha256).

    A file counts at its manifest size, or (an archive accepted by content) with its record.
    """
    for entry in manifest.files:
        path = root / entry.path
        if not path.is_file():
            return False
        if path.stat().st_size != entry.size and not _record(path).is_file():
            return False
    return True


def _fetch_checkpoints(manifest: Manifest, root: Path, todo: list[ManifestFile]) -> None:
    urls = manifest.upstream.get("files") or {}
    for entry in todo:
        if entry.path not in urls:
            raise DataError(f"{manifest.manifest_path}: upstream.files has no URL for {entry.path}")
        _say(f"  downloading {urls[entry.path]}")
        download(manifest.name, urls[entry.path], root / entry.path, entry.sha256)


def _accept(path: Path, entry: ManifestFile, kind: str, name: str) -> tuple[str, str]:
    """``(how, sha256)`` of the rebuilt archive at ``path``: how it verifies, else raise."""
    actual = sha256_file(path)
    if actual == entry.sha256:
        return "sha256", actual
    content = content_sha256(path, kind, desc=f"{name}: checking content")
    if content == entry.content_sha256:
        return "content", actual
    raise ChecksumMismatchError(
        f"{name}: the rebuilt archive {entry.path} does not verify: expected sha256 "
        f"{entry.sha256}, actual {actual}; expected content_sha256 {entry.content_sha256}, "
        f"actual {content}. It was not kept, nor the upstream download it came from; "
        f"a later fetch downloads afresh."
    )


def _write_classes(manifest: Manifest, root: Path) -> None:
    entry = manifest.file("classes.json")
    data = json.dumps(manifest.extra["classes_json"], indent=1).encode("utf-8")
    actual = hashlib.sha256(data).hexdigest()
    if actual != entry.sha256:
        raise ChecksumMismatchError(
            f"{manifest.name}: classes.json written from classes_json in {manifest.manifest_path} "
            f"has sha256 {actual}, expected {entry.sha256}; the manifest is inconsistent"
        )
    _replace(root / entry.path, data)


def _replace(dest: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, dest)


def _rebuild(manifest: Manifest, root: Path) -> str:
    """Download the upstream archive, rebuild ``<item>.zip`` from it, verify, move into place."""
    name, entry = manifest.name, manifest.archive()
    url, commit = manifest.upstream.get("url"), str(manifest.upstream.get("commit") or "")
    if not url or len(commit) != 40:
        raise DataError(f"{manifest.manifest_path}: upstream needs url and the full 40-hex commit")
    zipped = root / DOWNLOADS / f"{name}-{commit}.zip"
    _say(f"  downloading {url}")
    download(name, url, zipped, None)
    dest = root / entry.path
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".building", dir=dest.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        _say(f"  packing {entry.path} from {zipped.name}")
        with Upstream(zipped, name, url) as up:
            entries = RECIPES[name](up, manifest.extra["classes_json"])
            write_archive(tmp_path, manifest.kind, entries)
        how, actual = _accept(tmp_path, entry, manifest.kind, name)
    except BaseException as exc:
        tmp_path.unlink(missing_ok=True)
        if isinstance(exc, (ChecksumMismatchError, CorruptArchiveError)):
            zipped.unlink(missing_ok=True)  # the download made it wrong: do not trust it
        raise
    record = _record(dest)
    os.chmod(tmp_path, 0o644)
    os.replace(tmp_path, dest)
    if how == "content":
        _replace(
            record, json.dumps({"sha256": actual, "content_sha256": entry.content_sha256}).encode()
        )
    else:
        record.unlink(missing_ok=True)
    zipped.unlink()
    return how


def fetch(names: Iterable[str] | None = None, root: Path | str | None = None) -> dict[str, str]:
    """Download, rebuild and verify ``names`` (default: every item) into ``root``.

    Returns ``item -> how``: ``present`` (its files, or at least its archive, were already
    there and verified), ``sha256`` (fetched, bytes identical to the mirror's) or
    ``content`` (fetched, decoded content identical to the mirror's).
    """
    root = Path(root).expanduser().resolve() if root is not None else DEFAULT_ROOT
    done = {}
    for name in list(names or DATASET_NAMES):
        manifest = load_manifest(name)
        todo = [f for f in manifest.files if not _verified(root, f)]
        if not todo:
            _say(f"{name}: present in {root}, verified")
            done[name] = "present"
            continue
        _say(f"{name}: fetching into {root}")
        if manifest.kind == "checkpoints":
            _fetch_checkpoints(manifest, root, todo)
            done[name] = "sha256"
        else:
            done[name] = _rebuild(manifest, root) if manifest.archive() in todo else "present"
            _write_classes(manifest, root)
        said = {
            "sha256": "verified: sha256 as in the manifest",
            "content": "verified by decoded content: content_sha256 as in the manifest",
            "present": "its archive was there, verified; classes.json written",
        }[done[name]]
        _say(f"{name}: done ({said})")
    downloads = root / DOWNLOADS
    if downloads.is_dir() and not any(downloads.iterdir()):
        downloads.rmdir()
    return done


def ensure() -> dict[str, str]:
    """Fetch the items that no root in ``$BACKDOORBOOK_DATA`` holds, into its first root."""
    roots = [p for _, p in _configured_roots()]
    target = roots[0] if roots else DEFAULT_ROOT
    missing = [
        n for n in DATASET_NAMES if not any(holds(r, load_manifest(n)) for r in roots if r.is_dir())
    ]
    where = f"{ENV_DATA}={os.pathsep.join(map(str, roots))}" if roots else f"{ENV_DATA} is unset"
    if not missing:
        _say(f"Data: a data root holds every item ({where}); nothing to fetch.")
        return {}
    _say(
        f"No data root holds {', '.join(missing)} ({where}): fetching them from their pinned "
        f"upstreams into {target} (python -m backdoorbook.data fetch; see data_manifests/)."
    )
    done = fetch(missing, target)
    if not roots:
        _say(f"Fetched. Set {ENV_DATA}={target} to read the data from there.")
    return done
