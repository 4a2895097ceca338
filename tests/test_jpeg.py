import io
import zipfile

import numpy as np
import pytest
from PIL import Image

from backdoorbook.data.jpeg import archive_jpeg_quality, ijg_quality


def _jpeg_bytes(quality):
    buffer = io.BytesIO()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(
        buffer, "JPEG", quality=quality
    )
    return buffer.getvalue()


@pytest.mark.parametrize("quality", [50, 75, 95])
def test_ijg_quality_recovers_the_encoding_quality(quality):
    assert ijg_quality(Image.open(io.BytesIO(_jpeg_bytes(quality)))) == quality


def test_png_is_rejected_and_archive_counts(tmp_path):
    png = io.BytesIO()
    Image.new("RGB", (4, 4)).save(png, "PNG")
    with pytest.raises(ValueError, match="not a JPEG"):
        ijg_quality(Image.open(png))
    path = tmp_path / "a.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("a.jpg", _jpeg_bytes(75))
        zf.writestr("b.jpg", _jpeg_bytes(75))
        zf.writestr("c.jpg", _jpeg_bytes(90))
    assert archive_jpeg_quality(path) == {75: 2, 90: 1}


def test_reencoding_changes_pixels_less_at_higher_quality():
    from backdoorbook.data.jpeg import reencode_jpeg

    rng = np.random.default_rng(0)
    smooth = np.repeat(np.repeat(rng.integers(0, 256, (2, 4, 4, 3), dtype=np.uint8), 8, 1), 8, 2)
    errors = [np.abs(reencode_jpeg(smooth, q).astype(int) - smooth).mean() for q in (30, 95)]
    assert reencode_jpeg(smooth, 75).shape == smooth.shape and errors[0] > errors[1] > 0
    with pytest.raises(ValueError, match="quality"):
        reencode_jpeg(smooth, 0)
