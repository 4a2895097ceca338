"""Decoded datasets as numpy arrays and torch ``Dataset`` wrappers.

:func:`load_classification` and :func:`load_segmentation` verify the archive (sha256),
decode the requested split once and cache the arrays (see :mod:`.cache`); later calls,
in any process, load the cached ``.npy`` files. Splits are the archive's own
``index.csv`` values (cifar10/gtsrb: train, test; camvid and miniimagenet: train, val,
test; imagenette: val; weizmann_horse: all); ``"all"`` is accepted everywhere and selects
every row in index order.

miniImageNet's splits are the Ravi & Larochelle *class* splits (64/16/20 classes):
labels are always indices into the full 100-class list of :func:`load_classes`, so the
``val`` split's labels are 16 distinct values from 0..99; :func:`class_splits` gives
each split's label set.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from . import archive as _archive
from . import cache as _cache
from .manifest import CorruptArchiveError, DataError, Manifest, load_manifest
from .registry import load_classes, load_classes_json, locate

__all__ = [
    "ClassificationArrays",
    "SegmentationArrays",
    "load_classification",
    "load_segmentation",
    "class_splits",
    "ClassificationDataset",
    "SegmentationDataset",
]


@dataclass
class ClassificationArrays:
    """``images`` uint8 ``[N,H,W,3]``, ``labels`` int64 ``[N]`` (indices into ``classes``)."""

    images: np.ndarray
    labels: np.ndarray
    classes: list[str]
    name: str = ""
    split: str = ""

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass
class SegmentationArrays:
    """Lists of uint8 ``HxWx3`` images and ``HxW`` class-id masks (sizes may vary)."""

    images: list[np.ndarray]
    masks: list[np.ndarray]
    classes: list[str]
    ignore_index: int | None
    name: str = ""
    split: str = ""

    def __len__(self) -> int:
        return len(self.images)


def _manifest_of_kind(name: str, kind: str) -> Manifest:
    manifest = load_manifest(name)
    if manifest.kind != kind:
        raise DataError(
            f"dataset {name!r} is a {manifest.kind} item, not {kind} ({manifest.manifest_path})"
        )
    return manifest


def _desc(name: str, split: str) -> str:
    return f"decoding {name}/{split}"


# ------------------------------------------------------------------ classification


def _cached_classification(name: str, sha: str, split: str) -> tuple[np.ndarray, np.ndarray] | None:
    images = _cache.load_array(
        _cache.cache_path(name, sha, split, "images"), dtype=np.uint8, ndim=4
    )
    labels = _cache.load_array(
        _cache.cache_path(name, sha, split, "labels"), dtype=np.int64, ndim=1
    )
    if (
        images is None
        or labels is None
        or images.shape[0] != labels.shape[0]
        or images.shape[-1] != 3
    ):
        return None
    return images, labels


def load_classification(name: str, split: str) -> ClassificationArrays:
    """Decode (or load from cache) one split of a classification archive."""
    manifest = _manifest_of_kind(name, "classification")
    entry = manifest.archive()
    path = locate(name, entry.path)
    classes = load_classes(name)
    hit = _cached_classification(name, entry.sha256, split)
    if hit is not None:
        images, labels = hit
        if labels.size and int(labels.max()) < len(classes):
            return ClassificationArrays(images, labels, classes, name, split)
    with _archive.open_archive(path) as zf:
        rows = _archive.select_split(_archive.read_index(zf, path, "classification"), split, path)
        for r in rows:
            if r.target >= len(classes):
                raise CorruptArchiveError(
                    f"archive {path}: label {r.target} at index.csv line {r.line} ({r.path}) "
                    f"is out of range for {len(classes)} classes"
                )
        decoded = _archive.decode_images(
            zf, path, [r.path for r in rows], lines=[r.line for r in rows], desc=_desc(name, split)
        )
    shape = decoded[0].shape
    for r, img in zip(rows, decoded):
        if img.shape != shape:
            raise CorruptArchiveError(
                f"archive {path}: member {r.path!r} (index.csv line {r.line}) is {img.shape}, "
                f"expected {shape} like the rest of split {split!r}"
            )
    images = np.stack(decoded)
    del decoded
    labels = np.fromiter((r.target for r in rows), dtype=np.int64, count=len(rows))
    _cache.save_array(_cache.cache_path(name, entry.sha256, split, "images"), images)
    _cache.save_array(_cache.cache_path(name, entry.sha256, split, "labels"), labels)
    return ClassificationArrays(images, labels, classes, name, split)


def class_splits(name: str) -> dict[str, list[int]]:
    """``split -> sorted label indices present in it`` (miniimagenet: the Ravi class splits)."""
    manifest = _manifest_of_kind(name, "classification")
    path = locate(name, manifest.archive().path)
    with _archive.open_archive(path) as zf:
        rows = _archive.read_index(zf, path, "classification")
    out: dict[str, set[int]] = {}
    for r in rows:
        out.setdefault(r.split, set()).add(int(r.target))
    return {s: sorted(v) for s, v in out.items()}


# -------------------------------------------------------------------- segmentation


def _split_flat(flat: np.ndarray, shapes: np.ndarray, channels: int) -> list[np.ndarray] | None:
    sizes = shapes[:, 0] * shapes[:, 1] * channels
    if int(sizes.sum()) != flat.size:
        return None
    out, off = [], 0
    for (h, w), n in zip(shapes.tolist(), sizes.tolist()):
        a = flat[off : off + n]
        out.append(a.reshape((h, w, channels) if channels > 1 else (h, w)))
        off += n
    return out


def _cached_segmentation(name: str, sha: str, split: str):
    shapes = _cache.load_array(
        _cache.cache_path(name, sha, split, "shapes"), dtype=np.int64, ndim=2
    )
    images = _cache.load_array(
        _cache.cache_path(name, sha, split, "images"), dtype=np.uint8, ndim=1
    )
    masks = _cache.load_array(_cache.cache_path(name, sha, split, "masks"), dtype=np.uint8, ndim=1)
    if (
        shapes is None
        or images is None
        or masks is None
        or shapes.shape[1:] != (2,)
        or (shapes <= 0).any()
    ):
        return None
    imgs = _split_flat(images, shapes, 3)
    msks = _split_flat(masks, shapes, 1)
    if imgs is None or msks is None:
        return None
    return imgs, msks


def load_segmentation(name: str, split: str) -> SegmentationArrays:
    """Decode (or load from cache) one split of a segmentation archive."""
    manifest = _manifest_of_kind(name, "segmentation")
    entry = manifest.archive()
    path = locate(name, entry.path)
    raw = load_classes_json(name)
    classes = load_classes(name)
    ignore = raw.get("ignore_index")
    ignore = int(ignore) if ignore is not None else None
    hit = _cached_segmentation(name, entry.sha256, split)
    if hit is not None:
        return SegmentationArrays(hit[0], hit[1], classes, ignore, name, split)
    with _archive.open_archive(path) as zf:
        rows = _archive.select_split(_archive.read_index(zf, path, "segmentation"), split, path)
        lines = [r.line for r in rows]
        images = _archive.decode_images(
            zf, path, [r.path for r in rows], lines=lines, desc=_desc(name, split)
        )
        masks = _archive.decode_images(
            zf,
            path,
            [str(r.target) for r in rows],
            mask=True,
            lines=lines,
            desc=_desc(name, split) + " masks",
        )
    for r, img, m in zip(rows, images, masks):
        if img.shape[:2] != m.shape:
            raise CorruptArchiveError(
                f"archive {path}: image {r.path!r} is {img.shape[:2]} "
                f"but mask {r.target!r} is {m.shape} "
                f"(index.csv line {r.line})"
            )
    shapes = np.array([m.shape for m in masks], dtype=np.int64).reshape(-1, 2)
    _cache.save_array(
        _cache.cache_path(name, entry.sha256, split, "images"),
        np.concatenate([i.ravel() for i in images]),
    )
    _cache.save_array(
        _cache.cache_path(name, entry.sha256, split, "masks"),
        np.concatenate([m.ravel() for m in masks]),
    )
    _cache.save_array(_cache.cache_path(name, entry.sha256, split, "shapes"), shapes)
    return SegmentationArrays(images, masks, classes, ignore, name, split)


# --------------------------------------------------------------------- torch views


def _to_float_chw(img: np.ndarray) -> torch.Tensor:
    t = torch.from_numpy(img if img.flags.writeable else img.copy())
    return t.permute(2, 0, 1).to(torch.float32).div_(255.0)


class ClassificationDataset(Dataset):
    """``(float32 [3,H,W] in [0,1], int label)`` items over :class:`ClassificationArrays`.

    ``source`` is a :class:`ClassificationArrays` or a dataset name (then ``split`` is
    required). ``transform`` is applied to the image tensor.
    """

    def __init__(
        self,
        source: ClassificationArrays | str,
        split: str | None = None,
        *,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        if isinstance(source, str):
            if split is None:
                raise ValueError(
                    "split is required when ClassificationDataset is given a dataset name"
                )
            source = load_classification(source, split)
        self.arrays = source
        self.classes = source.classes
        self.transform = transform

    def __len__(self) -> int:
        return len(self.arrays)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        x = _to_float_chw(self.arrays.images[index])
        if self.transform is not None:
            x = self.transform(x)
        return x, int(self.arrays.labels[index])


class SegmentationDataset(Dataset):
    """``(float32 [3,H,W] in [0,1], int64 mask [H,W])`` items over :class:`SegmentationArrays`.

    ``transform(image, mask) -> (image, mask)`` is applied jointly to both tensors.
    """

    def __init__(
        self,
        source: SegmentationArrays | str,
        split: str | None = None,
        *,
        transform: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
        | None = None,
    ) -> None:
        if isinstance(source, str):
            if split is None:
                raise ValueError(
                    "split is required when SegmentationDataset is given a dataset name"
                )
            source = load_segmentation(source, split)
        self.arrays = source
        self.classes = source.classes
        self.ignore_index = source.ignore_index
        self.transform = transform

    def __len__(self) -> int:
        return len(self.arrays)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = _to_float_chw(self.arrays.images[index])
        y = torch.from_numpy(np.asarray(self.arrays.masks[index]).astype(np.int64))
        if self.transform is not None:
            x, y = self.transform(x, y)
        return x, y
