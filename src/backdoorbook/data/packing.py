"""Rebuilding the mirror's archives from their upstreams, by the rules of ``PACKING.md``.

Archive conventions (every ``<item>/<item>.zip``), which :func:`write_archive` applies:

- members in the order the item's recipe yields them, then ``index.csv`` last;
- every member has ``date_time = (1980, 1, 1, 0, 0, 0)`` and ``external_attr = 0o644 << 16``;
- image and mask members are stored; ``index.csv`` is deflated at zlib's default level;
- ``index.csv`` is UTF-8, written by :mod:`csv` with ``lineterminator="\\n"``: a header row
  (``path,split,label`` or ``path,split,mask_path``), then one row per image in member order;
- re-encoded members: PNGs by Pillow with ``optimize=True``, JPEGs by Pillow at the quality
  the recipe states.

A recipe (:data:`RECIPES`, one per item) reads the downloaded GitHub archive through
:class:`Upstream` and yields ``(index row, [(member name, bytes), ...])`` in archive order;
the class lists come from the manifest's ``classes_json``. Following these rules, cifar10's
archive is reproduced byte for byte; the bytes of re-encoded members (camvid, gtsrb,
weizmann_horse) depend on the Pillow, zlib and libjpeg versions, which is why manifests also
carry a checksum of the decoded content (:mod:`.content`).
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from .manifest import CorruptArchiveError, DataError, UpstreamFileMissingError

__all__ = ["Upstream", "Entry", "write_archive", "RECIPES"]

EPOCH = (1980, 1, 1, 0, 0, 0)
HEADERS = {
    "classification": ("path", "split", "label"),
    "segmentation": ("path", "split", "mask_path"),
}
MINIIMAGENET_PER_CLASS = 100
IMAGENETTE_PER_CLASS = 50
#: ``(index row, members it brings)``; a row is ``(path, split, label or mask_path)``.
Entry = tuple[tuple[str, str, int | str], list[tuple[str, bytes]]]


class Upstream:
    """A downloaded GitHub repository archive, read in place.

    Paths are repository paths: the archive's single top folder (``<repo>-<commit>/``) is
    dropped. A file the rules need but the archive lacks raises
    :class:`UpstreamFileMissingError` naming it; an unreadable one, :class:`CorruptArchiveError`.
    """

    def __init__(self, path: Path, item: str, url: str) -> None:
        self.path, self.item, self.url = Path(path), item, url
        try:
            self._zip = zipfile.ZipFile(self.path)
        except (zipfile.BadZipFile, OSError) as exc:
            raise CorruptArchiveError(
                f"{item}: the download {self.path} (from {url}) is not a readable zip: {exc}"
            ) from exc
        names = [i.filename for i in self._zip.infolist() if not i.is_dir()]
        tops = {n.split("/", 1)[0] for n in names}
        strip = len(tops) == 1 and all("/" in n for n in names)
        self._names = {(n.split("/", 1)[1] if strip else n): n for n in names}
        self._folders: dict[str, list[str]] = defaultdict(list)
        for rel in self._names:
            self._folders[rel.rpartition("/")[0]].append(rel)

    def __enter__(self) -> Upstream:
        return self

    def __exit__(self, *exc: object) -> None:
        self._zip.close()

    def missing(self, what: str) -> UpstreamFileMissingError:
        """The error for a needed ``what`` ("file a/b.png") that the archive lacks."""
        return UpstreamFileMissingError(
            f"{self.item}: the upstream archive {self.url} (downloaded to {self.path}) has no "
            f"{what}, which the packing rules need"
        )

    def files(self, folder: str, suffix: str, *, required: bool = True) -> list[str]:
        """Sorted paths of the files directly in ``folder`` whose names end with ``suffix``."""
        found = sorted(p for p in self._folders.get(folder, ()) if p.endswith(suffix))
        if required and not found:
            raise self.missing(f"file {folder}/*{suffix}")
        return found

    def read(self, path: str) -> bytes:
        """The bytes of one repository file."""
        if path not in self._names:
            raise self.missing(f"file {path}")
        try:
            return self._zip.read(self._names[path])
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise CorruptArchiveError(
                f"{self.item}: cannot read {path} from {self.path}: {exc}"
            ) from exc

    def image(self, path: str) -> Image.Image:
        """One repository file decoded by Pillow (loaded)."""
        data = self.read(path)
        try:
            im = Image.open(io.BytesIO(data))
            im.load()
        except Exception as exc:  # Pillow raises UnidentifiedImageError, OSError, SyntaxError
            raise CorruptArchiveError(
                f"{self.item}: cannot decode {path} from {self.path}: {exc}"
            ) from exc
        return im


def _info(name: str, compression: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=EPOCH)
    info.external_attr = 0o644 << 16
    info.compress_type = compression
    return info


def write_archive(dest: Path, kind: str, entries: Iterable[Entry]) -> int:
    """Write ``entries`` and then ``index.csv`` to ``dest`` by the conventions; returns the rows."""
    rows = []
    with zipfile.ZipFile(dest, "w") as zf:
        for row, members in entries:
            for name, data in members:
                zf.writestr(_info(name, zipfile.ZIP_STORED), data)
            rows.append(row)
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(HEADERS[kind])
        writer.writerows(rows)
        zf.writestr(_info("index.csv", zipfile.ZIP_DEFLATED), text.getvalue().encode("utf-8"))
    return len(rows)


def _png(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _jpeg(im: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _name(path: str) -> str:
    return path.rpartition("/")[2]


def _stem(path: str) -> str:
    return _name(path).rpartition(".")[0]


def _mask(up: Upstream, path: str) -> np.ndarray:
    im = up.image(path)
    if im.mode not in ("L", "P"):
        raise DataError(f"{up.item}: mask {path} in {up.url} is mode {im.mode}, not single-channel")
    return np.array(im, dtype=np.uint8)


# ------------------------------------------------------------------------- recipes


def cifar10(up: Upstream, classes: dict) -> Iterator[Entry]:
    """Every ``{train,test}/<class>/*.jpg``, bytes unchanged, sorted by path."""
    names = classes["classes"]
    paths = [
        (p, split, label)
        for split in ("train", "test")
        for label, c in enumerate(names)
        for p in up.files(f"{split}/{c}", ".jpg")
    ]
    for path, split, label in sorted(paths):
        yield (path, split, label), [(path, up.read(path))]


def camvid(up: Upstream, classes: dict) -> Iterator[Entry]:
    """Half resolution: image RGB, BOX-resized; mask ``[::2, ::2]`` with 'unlabelled' as ignore."""
    unlabelled, ignore = len(classes["classes"]), classes["ignore_index"]
    for split in ("train", "val", "test"):
        for path in up.files(f"CamVid/{split}", ".png"):
            name = _name(path)
            image = up.image(path).convert("RGB")
            image = image.resize((image.width // 2, image.height // 2), Image.Resampling.BOX)
            mask = _mask(up, f"CamVid/{split}annot/{name}")[::2, ::2].copy()
            mask[mask == unlabelled] = ignore
            row = (f"{split}/images/{name}", split, f"{split}/masks/{name}")
            yield row, [(row[0], _png(image)), (row[2], _png(Image.fromarray(mask)))]


def gtsrb(up: Upstream, classes: dict) -> Iterator[Entry]:
    """Train: every 2nd file per class folder, then every 2nd overall; test: every 2nd GT row."""
    train = "GTSRB/Final_Training/Images"
    kept = [(c, p) for c in classes["class_ids"] for p in up.files(f"{train}/{c:05d}", ".ppm")[::2]]
    for c, path in kept[::2]:
        name = f"train/{c:05d}/{_stem(path)}.png"
        yield (name, "train", c), [(name, _png(up.image(path).convert("RGB")))]
    gt = "GTSRB/Final_Test/GT-final_test.csv"
    reader = csv.DictReader(io.StringIO(up.read(gt).decode("utf-8-sig")), delimiter=";")
    if not {"Filename", "ClassId"} <= set(reader.fieldnames or ()):
        raise DataError(
            f"{up.item}: {gt} in {up.url} has columns {reader.fieldnames}, "
            f"expected Filename and ClassId"
        )
    for row in list(reader)[::2]:
        name = f"test/{_stem(row['Filename'])}.png"
        image = up.image(f"GTSRB/Final_Test/Images/{row['Filename']}").convert("RGB")
        yield (name, "test", int(row["ClassId"])), [(name, _png(image))]


def miniimagenet(up: Upstream, classes: dict) -> Iterator[Entry]:
    """Per class, the first 100 files of train/ and val/ together, under its Ravi split."""
    split_of = {w: s for s, wnids in classes["ravi_split"].items() for w in wnids}
    picked = []
    for label, wnid in enumerate(classes["classes"]):
        found = up.files(f"train/{wnid}", ".jpg", required=False)
        found += up.files(f"val/{wnid}", ".jpg", required=False)
        if not found:
            raise up.missing(f"file train/{wnid}/*.jpg or val/{wnid}/*.jpg")
        for path in sorted(found, key=lambda p: (_name(p), p))[:MINIIMAGENET_PER_CLASS]:
            member = f"{split_of[wnid]}/{wnid}/{_name(path)}"
            picked.append((member, split_of[wnid], label, path))
    for member, split, label, path in sorted(picked):
        yield (member, split, label), [(member, up.read(path))]


def imagenette(up: Upstream, classes: dict) -> Iterator[Entry]:
    """Per wnid, the first 50 ``val/<wnid>/*.JPEG`` in path order, bytes unchanged."""
    picked = [
        (p, label)
        for label, w in enumerate(classes["wnids"])
        for p in up.files(f"val/{w}", ".JPEG")[:IMAGENETTE_PER_CLASS]
    ]
    for path, label in sorted(picked):
        yield (path, "val", label), [(path, up.read(path))]


def weizmann_horse(up: Upstream, classes: dict) -> Iterator[Entry]:
    """Mask: figure-ground > 127 as PNG {0, 1}; photo resized to the mask, JPEG quality 95."""
    for path in up.files("weizmann_horse_db/rgb", ".jpg"):
        name = _name(path)
        ground = up.image(f"weizmann_horse_db/figure_ground/{name}").convert("L")
        mask = (np.asarray(ground) > 127).astype(np.uint8)
        photo = up.image(path).convert("RGB")
        method = Image.Resampling.BOX if photo.width >= ground.width else Image.Resampling.BICUBIC
        image = photo.resize(ground.size, method)
        row = (f"images/{name}", "all", f"masks/{_stem(name)}.png")
        yield row, [(row[0], _jpeg(image, 95)), (row[2], _png(Image.fromarray(mask)))]


#: item -> recipe(upstream, classes_json) yielding the archive's entries in order.
RECIPES: dict[str, Callable[[Upstream, dict], Iterator[Entry]]] = {
    "cifar10": cifar10,
    "camvid": camvid,
    "gtsrb": gtsrb,
    "miniimagenet": miniimagenet,
    "imagenette": imagenette,
    "weizmann_horse": weizmann_horse,
}
