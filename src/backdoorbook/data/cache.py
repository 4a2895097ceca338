"""On-disk cache of decoded arrays.

Files live in :func:`cache_dir` (``$BACKDOORBOOK_CACHE``, default
``~/.cache/backdoorbook``) and are named ``<name>-<archive sha256[:16]>-<split>-<part>.npy``,
so a changed archive never reuses stale arrays. Each file is written to a temporary file in
the same folder and renamed into place (atomic). A file that fails to load is ignored (and
later overwritten), never trusted; an unwritable cache only costs speed.
"""

from __future__ import annotations

import os
import re
import tempfile
import warnings
from pathlib import Path

import numpy as np

__all__ = ["cache_dir", "cache_path", "save_array", "load_array", "CACHE_VERSION"]

ENV_CACHE = "BACKDOORBOOK_CACHE"
#: Bumped when the layout of cached arrays changes.
CACHE_VERSION = "v1"


def cache_dir() -> Path:
    """The cache folder (not created here)."""
    env = os.environ.get(ENV_CACHE, "").strip()
    if env:
        return Path(env).expanduser().resolve()
    return Path.home() / ".cache" / "backdoorbook"


def cache_path(name: str, archive_sha256: str, split: str, part: str) -> Path:
    """Path of one cached array."""
    safe_split = re.sub(r"[^A-Za-z0-9_.-]", "_", split)
    return cache_dir() / f"{name}-{archive_sha256[:16]}-{safe_split}-{CACHE_VERSION}-{part}.npy"


def save_array(path: Path, arr: np.ndarray) -> None:
    """Write ``arr`` to ``path`` atomically; warn (do not fail) if the cache is unwritable."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                np.save(fh, np.ascontiguousarray(arr), allow_pickle=False)
            os.chmod(tmp, 0o644)  # mkstemp creates 0600
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
    except OSError as exc:
        warnings.warn(
            f"could not write data cache file {path}: {exc}", RuntimeWarning, stacklevel=2
        )


def load_array(path: Path, *, dtype: np.dtype, ndim: int, mmap: bool = False) -> np.ndarray | None:
    """Load a cached array, or None if it is absent, unreadable or not the expected dtype/ndim."""
    if not path.is_file():
        return None
    try:
        arr = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except Exception:  # truncated, garbage, wrong format: rebuild
        return None
    if not isinstance(arr, np.ndarray) or arr.dtype != np.dtype(dtype) or arr.ndim != ndim:
        return None
    return arr
