"""Downloading upstream files with pooch, resuming interrupted transfers.

:func:`download` uses :func:`pooch.retrieve` for the cache rules: a file that is already
there and matches its known sha256 is neither downloaded again nor overwritten, and a new
download replaces the target only once its hash matches (a mismatch deletes it).

pooch's own ``HTTPDownloader`` restarts an interrupted transfer from the first byte, into a
temporary file that pooch deletes on failure. So :class:`ResumingDownloader`, passed to
pooch as its downloader hook, keeps the bytes received in ``<target>.part`` and continues
with an HTTP ``Range`` request: within a run after a dropped connection (up to
:data:`ATTEMPTS` tries), and in the next run after a failed one. A server that ignores the
range gets a fresh transfer. A transfer shorter than its ``Content-Length`` counts as
interrupted (urllib3 1.x ends such a body silently); without a ``Content-Length`` the end of
the stream is the end of the file, and a truncated zip is caught when it is opened.

``$BACKDOORBOOK_UPSTREAM_MIRROR`` (a base URL) sends every upstream URL ``https://host/path``
to ``<mirror>/host/path`` instead: for a local copy of the upstream hosts, and for tests.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from pathlib import Path
from urllib.parse import urlsplit

import pooch
import requests
from tqdm import tqdm

from .manifest import ChecksumMismatchError, DownloadError
from .registry import sha256_file

__all__ = ["download", "resolve_url", "ResumingDownloader", "ATTEMPTS", "ENV_MIRROR"]

ENV_MIRROR = "BACKDOORBOOK_UPSTREAM_MIRROR"
#: Tries per file within one run; the n-th retry waits ``n * RETRY_WAIT`` seconds first.
ATTEMPTS = 5
RETRY_WAIT = 2.0
TIMEOUT = 60.0
_CHUNK = 1 << 20


def resolve_url(url: str) -> str:
    """``url``, or its counterpart under ``$BACKDOORBOOK_UPSTREAM_MIRROR`` when that is set."""
    mirror = os.environ.get(ENV_MIRROR, "").strip().rstrip("/")
    if not mirror:
        return url
    parts = urlsplit(url)
    return f"{mirror}/{parts.netloc}{parts.path}"


class ResumingDownloader:
    """A pooch downloader that resumes from ``part`` with HTTP Range requests (see above)."""

    def __init__(self, item: str, part: Path) -> None:
        self.item, self.part = item, Path(part)
        self.sha256: str | None = None  # of the completed download, for error messages

    def __call__(self, url: str, output_file: str, pooch_instance: object = None) -> None:
        """Download ``url`` into ``output_file`` (pooch's temporary file), resuming ``part``."""
        last: object = None
        for attempt in range(1, ATTEMPTS + 1):
            try:
                if self._transfer(url):
                    break
                last = "the transfer ended before the end of the file"
            except requests.HTTPError as exc:
                status = exc.response.status_code
                if status < 500 and status not in (408, 429):
                    raise DownloadError(
                        f"{self.item}: downloading {url} failed: HTTP {status} "
                        f"{exc.response.reason}"
                    ) from exc
                last = exc
            except requests.RequestException as exc:  # connection refused, reset, timeout
                last = exc
            if attempt < ATTEMPTS:
                time.sleep(RETRY_WAIT * attempt)
        else:
            kept = self.part.stat().st_size if self.part.exists() else 0
            raise DownloadError(
                f"{self.item}: could not download {url} ({ATTEMPTS} attempts; last error: "
                f"{last}). {kept} bytes are kept in {self.part}; run the fetch again to resume."
            )
        self.sha256 = sha256_file(self.part)
        os.replace(self.part, output_file)

    def _transfer(self, url: str) -> bool:
        """One GET from where ``part`` ends; True once the file is complete."""
        offset = self.part.stat().st_size if self.part.exists() else 0
        headers = {"Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        with requests.get(url, headers=headers, stream=True, timeout=TIMEOUT) as resp:
            if resp.status_code == 416:  # the part cannot be continued: start over
                self.part.unlink(missing_ok=True)
                return False
            resp.raise_for_status()
            ranged = resp.status_code == 206
            if ranged and _range_start(resp.headers.get("Content-Range")) != offset:
                self.part.unlink()  # not the range asked for: start over
                return False
            if not ranged:
                offset = 0  # the server sent the whole file
            length = resp.headers.get("Content-Length")
            total = offset + int(length) if length is not None else None
            with (
                open(self.part, "ab" if offset else "wb") as fh,
                tqdm(
                    total=total,
                    initial=offset,
                    unit="B",
                    unit_scale=True,
                    unit_divisor=1024,
                    desc=f"{self.item} download",
                    disable=None,
                    leave=False,
                ) as bar,
            ):
                for chunk in resp.iter_content(_CHUNK):
                    fh.write(chunk)
                    bar.update(len(chunk))
        return total is None or self.part.stat().st_size >= total


def _range_start(header: str | None) -> int:
    """First byte of a ``Content-Range: bytes START-END/TOTAL`` header (-1 if unreadable)."""
    try:
        return int(header.split()[1].split("-")[0])
    except (AttributeError, IndexError, ValueError):
        return -1


@contextlib.contextmanager
def _quiet_pooch():
    """pooch logs each download and suggests known hashes; the fetcher says what it does."""
    logger = pooch.get_logger()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def download(item: str, url: str, dest: Path, sha256: str | None) -> Path:
    """Make ``dest`` hold ``url``'s file; with ``sha256``, verified (an existing match is kept).

    Raises :class:`DownloadError` (network, HTTP status) naming the URL and the item, and
    :class:`ChecksumMismatchError` (expected and actual sha256) when the download differs;
    such a download is deleted, not kept.
    """
    url = resolve_url(url)
    dest = Path(dest)
    downloader = ResumingDownloader(item, dest.with_name(dest.name + ".part"))
    try:
        with _quiet_pooch():
            pooch.retrieve(
                url, known_hash=sha256, fname=dest.name, path=dest.parent, downloader=downloader
            )
    except ValueError as exc:  # pooch's hash mismatch
        if downloader.sha256 is None:
            raise
        raise ChecksumMismatchError(
            f"{item}: checksum mismatch for {dest} downloaded from {url}: expected sha256 "
            f"{sha256}, actual {downloader.sha256}. The download was deleted, not trusted."
        ) from exc
    return dest
