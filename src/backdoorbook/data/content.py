"""The checksum of an archive's decoded content: the manifests' ``content_sha256``.

The bytes of a re-encoded member depend on the Pillow, zlib and libjpeg that wrote it; the
pixels the loaders decode from a lossless PNG do not. So a rebuilt archive whose bytes
differ from the mirror's is accepted when this checksum matches the manifest's.

Definition (version 1): the sha256 of

1. the text ``backdoorbook-content-v1 <kind>\\n`` (``classification`` or ``segmentation``);
2. for each ``index.csv`` row, in index order: the UTF-8 text ``<path>,<split>,<target>\\n``
   (``target`` = the integer label or the mask's member path, as parsed by
   :func:`.archive.read_index`), then for the image and, in segmentation archives, its mask:
   the decoded shape as text (``HxWx3\\n`` or ``HxW\\n``) followed by the uint8 pixels in C
   order. Images decode as the loaders decode them (Pillow, converted to RGB); masks as
   single-channel class ids.

Member order and compression, timestamps and the zip structure are not part of it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .archive import decode_images, open_archive, read_index

__all__ = ["content_sha256"]

_BATCH = 512


def _update(h, arr: np.ndarray) -> None:
    h.update(("x".join(str(n) for n in arr.shape) + "\n").encode())
    h.update(np.ascontiguousarray(arr, dtype=np.uint8).tobytes())


def content_sha256(path: Path, kind: str, desc: str = "checking content") -> str:
    """The content checksum (defined above) of the ``kind`` archive at ``path``."""
    h = hashlib.sha256(f"backdoorbook-content-v1 {kind}\n".encode())
    with open_archive(path) as zf:
        rows = read_index(zf, path, kind)
        with tqdm(total=len(rows), desc=desc, unit="img", disable=None, leave=False) as bar:
            for start in range(0, len(rows), _BATCH):
                batch = rows[start : start + _BATCH]
                lines = [r.line for r in batch]
                images = decode_images(zf, path, [r.path for r in batch], lines=lines)
                masks = (
                    decode_images(zf, path, [str(r.target) for r in batch], mask=True, lines=lines)
                    if kind == "segmentation"
                    else [None] * len(batch)
                )
                for row, image, mask in zip(batch, images, masks):
                    h.update(f"{row.path},{row.split},{row.target}\n".encode())
                    _update(h, image)
                    if mask is not None:
                        _update(h, mask)
                bar.update(len(batch))
    return h.hexdigest()
