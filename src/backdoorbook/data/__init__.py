"""The compendium's data layer: manifests, verified files, decoded and cached arrays.

Data is read from the mirror under ``$BACKDOORBOOK_DATA`` (``os.pathsep``-separated
roots, e.g. ``../shared/data``), described by ``data_manifests/<name>.yml`` and checked by
sha256 before first use; loading never downloads. :mod:`.fetch` rebuilds the items from
their pinned upstreams on request (``make data``, ``python -m backdoorbook.data fetch``).
Decoded arrays are cached under ``$BACKDOORBOOK_CACHE`` (default ``~/.cache/backdoorbook``).

>>> from backdoorbook.data import load_classification, ClassificationDataset
>>> test = load_classification("cifar10", "test")      # doctest: +SKIP
>>> ds = ClassificationDataset(test)                    # doctest: +SKIP
"""

from .archive import split_counts
from .cache import cache_dir
from .datasets import (
    ClassificationArrays,
    ClassificationDataset,
    SegmentationArrays,
    SegmentationDataset,
    class_splits,
    load_classification,
    load_segmentation,
)
from .manifest import (
    DATASET_NAMES,
    ChecksumMismatchError,
    CorruptArchiveError,
    DataError,
    DataFileMissingError,
    DataRootError,
    DownloadError,
    Manifest,
    ManifestFile,
    UnknownDatasetError,
    UnknownSplitError,
    UpstreamFileMissingError,
    load_manifest,
    manifests_dir,
)
from .registry import data_roots, load_classes, load_classes_json, locate, used_checksums

__all__ = [
    "DataError",
    "UnknownDatasetError",
    "UnknownSplitError",
    "DataRootError",
    "DataFileMissingError",
    "ChecksumMismatchError",
    "CorruptArchiveError",
    "DownloadError",
    "UpstreamFileMissingError",
    "DATASET_NAMES",
    "Manifest",
    "ManifestFile",
    "manifests_dir",
    "data_roots",
    "load_manifest",
    "locate",
    "load_classes",
    "load_classes_json",
    "class_splits",
    "ClassificationArrays",
    "SegmentationArrays",
    "load_classification",
    "load_segmentation",
    "ClassificationDataset",
    "SegmentationDataset",
    "split_counts",
    "used_checksums",
    "cache_dir",
]
