"""Reading the mirror's stored zips: ``index.csv`` and the encoded members.

Classification archives index ``path,split,label``; segmentation archives index
``path,split,mask_path``. Members are read by random access (``zipfile``, no extraction)
and decoded with Pillow. Any structural problem raises :class:`CorruptArchiveError`
naming the archive and the offending row or member; an unknown split raises
:class:`UnknownSplitError` (a ``ValueError``) listing the valid ones.
"""

from __future__ import annotations

import csv
import io
import os
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from .manifest import CorruptArchiveError, DataError, UnknownSplitError, load_manifest
from .registry import locate

__all__ = [
    "IndexRow",
    "open_archive",
    "read_index",
    "select_split",
    "decode_images",
    "split_counts",
    "ALL_SPLITS",
    "PROGRESS_MIN",
]

#: Pseudo-split selecting every row of the index (in index order).
ALL_SPLITS = "all"
#: Show a progress bar when decoding at least this many members.
PROGRESS_MIN = 2000

_HEADERS = {
    "classification": ["path", "split", "label"],
    "segmentation": ["path", "split", "mask_path"],
}


@dataclass(frozen=True)
class IndexRow:
    """One row of ``index.csv``; ``target`` is an int label or a mask member path."""

    path: str
    split: str
    target: int | str
    line: int  # line number in index.csv (header is line 1)


def open_archive(path: Path) -> zipfile.ZipFile:
    """Open a zip, raising :class:`CorruptArchiveError` if it is not one."""
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise CorruptArchiveError(f"archive {path} is not a readable zip file: {exc}") from exc


def _read_member(zf: zipfile.ZipFile, archive: Path, member: str, line: int | None = None) -> bytes:
    where = f" (index.csv line {line})" if line is not None else ""
    try:
        return zf.read(member)
    except KeyError:
        raise CorruptArchiveError(
            f"archive {archive}: member {member!r}{where} is listed in index.csv but absent"
        ) from None
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise CorruptArchiveError(
            f"archive {archive}: cannot read member {member!r}{where}: {exc}"
        ) from exc


def read_index(zf: zipfile.ZipFile, archive: Path, kind: str) -> list[IndexRow]:
    """Parse and validate ``index.csv`` for a ``classification`` or ``segmentation`` archive."""
    if kind not in _HEADERS:
        raise DataError(f"no index format for kind {kind!r}")
    if "index.csv" not in zf.NameToInfo:
        raise CorruptArchiveError(f"archive {archive} has no index.csv")
    raw = _read_member(zf, archive, "index.csv")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CorruptArchiveError(f"archive {archive}: index.csv is not UTF-8: {exc}") from exc
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    want = _HEADERS[kind]
    if header is None or [h.strip() for h in header] != want:
        raise CorruptArchiveError(
            f"archive {archive}: index.csv header is {header!r}, expected {','.join(want)!r}"
        )
    rows: list[IndexRow] = []
    for lineno, rec in enumerate(reader, start=2):
        if not rec:
            continue
        if len(rec) != 3 or not rec[0] or not rec[1] or not rec[2]:
            raise CorruptArchiveError(
                f"archive {archive}: malformed index.csv row at line {lineno}: {','.join(rec)!r} "
                f"(expected {','.join(want)})"
            )
        path, split, target = (r.strip() for r in rec)
        if kind == "classification":
            try:
                label = int(target)
            except ValueError:
                raise CorruptArchiveError(
                    f"archive {archive}: bad label {target!r} in index.csv "
                    f"row at line {lineno} ({path})"
                ) from None
            if label < 0:
                raise CorruptArchiveError(
                    f"archive {archive}: negative label {label} in index.csv "
                    f"row at line {lineno} ({path})"
                )
            rows.append(IndexRow(path, split, label, lineno))
        else:
            rows.append(IndexRow(path, split, target, lineno))
    if not rows:
        raise CorruptArchiveError(f"archive {archive}: index.csv has no rows")
    return rows


def split_names(rows: list[IndexRow]) -> list[str]:
    """Split values in order of first appearance."""
    return list(dict.fromkeys(r.split for r in rows))


def select_split(rows: list[IndexRow], split: str, archive: Path) -> list[IndexRow]:
    """Rows of one split; ``"all"`` selects every row. Unknown → :class:`UnknownSplitError`."""
    names = split_names(rows)
    if split == ALL_SPLITS and ALL_SPLITS not in names:
        return list(rows)
    if split not in names:
        raise UnknownSplitError(
            f"unknown split {split!r} for archive {archive}; valid splits: "
            f"{', '.join(names + ([ALL_SPLITS] if ALL_SPLITS not in names else []))}"
        )
    return [r for r in rows if r.split == split]


def _progress_enabled(n: int) -> bool:
    return n >= PROGRESS_MIN and os.environ.get("BACKDOORBOOK_PROGRESS", "1") != "0"


def _decode_one(data: bytes, archive: Path, member: str, mask: bool) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            if mask:
                if im.mode == "1":
                    return np.asarray(im, dtype=np.uint8)
                if im.mode not in ("L", "P"):
                    raise CorruptArchiveError(
                        f"archive {archive}: mask {member!r} has mode {im.mode}, "
                        "expected single-channel L/P"
                    )
                return np.array(im, dtype=np.uint8)
            if im.mode != "RGB":
                im = im.convert("RGB")
            return np.array(im, dtype=np.uint8)
    except CorruptArchiveError:
        raise
    except Exception as exc:  # PIL raises UnidentifiedImageError, OSError, SyntaxError, ...
        raise CorruptArchiveError(
            f"archive {archive}: cannot decode image member {member!r}: {exc}"
        ) from exc


def decode_images(
    zf: zipfile.ZipFile,
    archive: Path,
    members: list[str],
    *,
    mask: bool = False,
    lines: list[int] | None = None,
    desc: str = "decoding",
) -> list[np.ndarray]:
    """Decode members to uint8 arrays: RGB ``HxWx3`` or, with ``mask=True``, ``HxW`` class ids."""
    out: list[np.ndarray] = []
    it = tqdm(
        members, desc=desc, unit="img", disable=not _progress_enabled(len(members)), mininterval=0.5
    )
    for i, member in enumerate(it):
        data = _read_member(zf, archive, member, lines[i] if lines else None)
        out.append(_decode_one(data, archive, member, mask))
    return out


def split_counts(name: str) -> dict[str, int]:
    """``split -> number of rows`` from the dataset archive's ``index.csv``."""
    manifest = load_manifest(name)
    if manifest.kind not in _HEADERS:
        raise DataError(f"dataset {name!r} is {manifest.kind}, it has no splits")
    path = locate(name, manifest.archive().path)
    with open_archive(path) as zf:
        rows = read_index(zf, path, manifest.kind)
    counts = Counter(r.split for r in rows)
    return {s: counts[s] for s in split_names(rows)}
