"""Which JPEG quality produced an archive's images (it explains accuracy lost to re-encoding)."""

from __future__ import annotations

import io
import zipfile
from functools import cache

import numpy as np
from PIL import Image


@cache
def _ijg_tables(quality: int) -> tuple[tuple[int, ...], ...]:
    """Pillow's (libjpeg's IJG) quantisation tables at ``quality``."""
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(buffer, format="JPEG", quality=quality)
    tables = Image.open(buffer).quantization
    return tuple(tuple(tables[k]) for k in sorted(tables))


def ijg_quality(image: Image.Image) -> int | None:
    """The IJG quality (1–100) whose standard tables equal ``image``'s, or ``None`` if none does."""
    tables = getattr(image, "quantization", None)
    if not tables:
        raise ValueError("not a JPEG image: it has no quantisation tables")
    found = tuple(tuple(tables[k]) for k in sorted(tables))
    return next((q for q in range(1, 101) if _ijg_tables(q) == found), None)


def archive_jpeg_quality(archive_path, members: int = 20) -> dict[int | None, int]:
    """Count the IJG qualities of the first ``members`` JPEG members of a zip archive."""
    counts: dict[int | None, int] = {}
    with zipfile.ZipFile(archive_path) as zf:
        names = [n for n in zf.namelist() if n.lower().endswith((".jpg", ".jpeg"))][:members]
        for name in names:
            quality = ijg_quality(Image.open(io.BytesIO(zf.read(name))))
            counts[quality] = counts.get(quality, 0) + 1
    return counts


def reencode_jpeg(images: np.ndarray, quality: int) -> np.ndarray:
    """uint8 images ``[N, H, W, 3]`` encoded as JPEG at IJG ``quality`` by Pillow and decoded
    again (what an upstream re-encoding does to pixels)."""
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected uint8 images [N, H, W, 3], got {images.dtype} {images.shape}")
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must lie in 1..100, got {quality}")
    out = np.empty_like(images)
    for i, image in enumerate(images):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
        out[i] = np.asarray(Image.open(buffer).convert("RGB"))
    return out
