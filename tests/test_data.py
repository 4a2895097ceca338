"""Tests of backdoorbook.data: fake mirrors in tmp_path, plus checks against the real mirror.

The real-mirror tests need BACKDOORBOOK_DATA (CI sets it to ../shared/data) and are
skipped, with that reason, only when it is unset.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

import backdoorbook.data as bd
from backdoorbook.data import archive as bd_archive
from backdoorbook.data import cache as bd_cache

REAL_DATA = os.environ.get("BACKDOORBOOK_DATA", "").strip()
needs_real = pytest.mark.skipif(
    not REAL_DATA, reason="BACKDOORBOOK_DATA is unset: no data mirror to test against (CI sets it)"
)


# ----------------------------------------------------------------------- helpers


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _zip(path: Path, members: dict[str, bytes]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)


class FakeMirror:
    """A data root + manifests dir + cache dir under tmp_path, wired up via env vars."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = tmp_path / "root"
        self.manifests = tmp_path / "manifests"
        self.cache = tmp_path / "cache"
        self.root.mkdir()
        self.manifests.mkdir()
        monkeypatch.setenv("BACKDOORBOOK_DATA", str(self.root))
        monkeypatch.setenv("BACKDOORBOOK_MANIFESTS", str(self.manifests))
        monkeypatch.setenv("BACKDOORBOOK_CACHE", str(self.cache))

    def manifest(self, name: str, kind: str, files: list[Path], splits: dict | None = None) -> Path:
        m = {
            "name": name,
            "kind": kind,
            "description": f"fake {name}",
            "files": [
                {
                    "path": f.relative_to(self.root).as_posix(),
                    "size": f.stat().st_size,
                    "sha256": _sha(f),
                }
                for f in files
            ],
            "splits": splits or {},
            "upstream": {"repository": "none", "commit": "0000000"},
            "licence": "test",
            "citation": "fake2024",
            "obtain": "made by the test suite",
        }
        path = self.manifests / f"{name}.yml"
        path.write_text(yaml.safe_dump(m))
        return path

    def classification(
        self,
        name: str = "fake",
        *,
        index: str | None = None,
        members: dict | None = None,
        raw_zip: bytes | None = None,
    ):
        """Write a classification item; returns (images by path, labels by path)."""
        rng = np.random.default_rng(0)
        imgs = {
            f"{s}/{i}.png": rng.integers(0, 256, (5, 4, 3), dtype=np.uint8)
            for s, n in (("train", 3), ("test", 2))
            for i in range(n)
        }
        labels = {p: k % 3 for k, p in enumerate(imgs)}
        if index is None:
            index = "path,split,label\n" + "".join(
                f"{p},{p.split('/')[0]},{labels[p]}\n" for p in imgs
            )
        if members is None:
            members = {p: _png(a) for p, a in imgs.items()}
        zpath = self.root / name / f"{name}.zip"
        if raw_zip is not None:
            zpath.parent.mkdir(parents=True, exist_ok=True)
            zpath.write_bytes(raw_zip)
        else:
            _zip(zpath, {"index.csv": index.encode(), **members})
        cj = self.root / name / "classes.json"
        cj.write_text(json.dumps({"classes": ["a", "b", "c"]}))
        self.manifest(name, "classification", [zpath, cj], {"train": 3, "test": 2})
        return imgs, labels

    def segmentation(self, name: str = "fakeseg"):
        rng = np.random.default_rng(1)
        sizes = [(5, 7), (9, 4), (6, 6)]
        imgs = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in sizes]
        masks = [rng.choice(np.array([0, 1, 255], np.uint8), (h, w)) for h, w in sizes]
        members = {
            "index.csv": (
                "path,split,mask_path\n"
                + "".join(f"images/{i}.png,all,masks/{i}.png\n" for i in range(3))
            ).encode()
        }
        for i, (a, m) in enumerate(zip(imgs, masks)):
            members[f"images/{i}.png"] = _png(a)
            members[f"masks/{i}.png"] = _png(m)
        zpath = self.root / name / f"{name}.zip"
        _zip(zpath, members)
        cj = self.root / name / "classes.json"
        cj.write_text(json.dumps({"classes": ["bg", "fg"], "ignore_index": 255}))
        self.manifest(name, "segmentation", [zpath, cj], {"all": 3})
        return imgs, masks


@pytest.fixture
def fake(tmp_path, monkeypatch) -> FakeMirror:
    return FakeMirror(tmp_path, monkeypatch)


# ------------------------------------------------------------------------ errors


def test_error_hierarchy():
    for cls in (
        bd.UnknownDatasetError,
        bd.DataRootError,
        bd.DataFileMissingError,
        bd.ChecksumMismatchError,
        bd.CorruptArchiveError,
        bd.UnknownSplitError,
    ):
        assert issubclass(cls, bd.DataError)
    assert issubclass(bd.DataError, RuntimeError)
    assert issubclass(bd.UnknownSplitError, ValueError)


def test_dataset_names_match_repo_manifests(monkeypatch):
    monkeypatch.delenv("BACKDOORBOOK_MANIFESTS", raising=False)
    assert bd.DATASET_NAMES == tuple(sorted(bd.DATASET_NAMES)) and len(bd.DATASET_NAMES) == 7
    assert tuple(sorted(p.stem for p in bd.manifests_dir().glob("*.yml"))) == bd.DATASET_NAMES
    for name in bd.DATASET_NAMES:
        m = bd.load_manifest(name)
        assert m.name == name and m.files and m.obtain and m.licence and m.citation


def test_unknown_name(fake):
    with pytest.raises(
        bd.UnknownDatasetError, match=r"unknown dataset 'nope'; valid names: .*cifar10"
    ):
        bd.load_manifest("nope")
    with pytest.raises(bd.UnknownDatasetError, match="valid names"):
        bd.load_classification("../etc", "train")


def test_no_root_set(fake, monkeypatch):
    fake.classification()
    monkeypatch.delenv("BACKDOORBOOK_DATA")
    with pytest.raises(bd.DataRootError, match=r"set BACKDOORBOOK_DATA .*\.\./shared/data"):
        bd.load_classification("fake", "train")
    monkeypatch.setenv("BACKDOORBOOK_DATA", "")
    with pytest.raises(bd.DataRootError, match="BACKDOORBOOK_DATA"):
        bd.data_roots()
    monkeypatch.setenv("BACKDOORBOOK_DATA", str(fake.root / "does-not-exist"))
    with pytest.raises(bd.DataRootError, match="none of the data roots"):
        bd.data_roots()


def test_file_missing_lists_roots_and_manifest(fake, monkeypatch, tmp_path):
    fake.classification()
    other = tmp_path / "other"
    other.mkdir()
    gone = tmp_path / "gone"
    monkeypatch.setenv(
        "BACKDOORBOOK_DATA", os.pathsep.join([str(other), str(gone), str(fake.root)])
    )
    (fake.root / "fake" / "fake.zip").unlink()
    sha = bd.load_manifest("fake").archive().sha256
    with pytest.raises(bd.DataFileMissingError) as ei:
        bd.load_classification("fake", "train")
    msg = str(ei.value)
    for expected in (
        "'fake'",
        "fake/fake.zip",
        str(other / "fake" / "fake.zip"),
        str(fake.root / "fake" / "fake.zip"),
        str(gone),
        sha,
        str(fake.manifests / "fake.yml"),
    ):
        assert expected in msg, (expected, msg)
    with pytest.raises(bd.DataFileMissingError, match=re.escape(str(fake.manifests / "fake.yml"))):
        bd.locate("fake", "fake.zip")


def test_first_root_wins(fake, monkeypatch, tmp_path):
    fake.classification()
    second = tmp_path / "second"
    (second / "fake").mkdir(parents=True)
    (second / "fake" / "fake.zip").write_bytes((fake.root / "fake" / "fake.zip").read_bytes())
    monkeypatch.setenv("BACKDOORBOOK_DATA", os.pathsep.join([str(second), str(fake.root)]))
    assert bd.locate("fake", "fake/fake.zip") == (second / "fake" / "fake.zip").resolve()
    assert bd.data_roots() == [second.resolve(), fake.root.resolve()]


def test_checksum_mismatch(fake):
    fake.classification()
    zpath = fake.root / "fake" / "fake.zip"
    expected = bd.load_manifest("fake").archive().sha256
    data = bytearray(zpath.read_bytes())
    data[-1] ^= 0xFF
    zpath.write_bytes(bytes(data))
    actual = _sha(zpath)
    with pytest.raises(
        bd.ChecksumMismatchError,
        match=rf"fake\.zip.*expected sha256 {expected}, actual {actual}.*fake\.yml",
    ):
        bd.load_classification("fake", "train")


def test_corrupt_archive_not_a_zip(fake):
    fake.classification(raw_zip=b"this is not a zip file at all" * 10)
    with pytest.raises(bd.CorruptArchiveError, match=r"fake\.zip is not a readable zip"):
        bd.load_classification("fake", "train")


def test_missing_index(fake):
    fake.classification(index="x")  # replaced below
    zpath = fake.root / "fake" / "fake.zip"
    _zip(zpath, {"train/0.png": _png(np.zeros((2, 2, 3), np.uint8))})
    fake.manifest("fake", "classification", [zpath, fake.root / "fake" / "classes.json"])
    with pytest.raises(bd.CorruptArchiveError, match=r"fake\.zip has no index\.csv"):
        bd.load_classification("fake", "train")


@pytest.mark.parametrize(
    "row, pattern",
    [
        ("train/1.png,train,notanint", r"bad label 'notanint' in index\.csv row at line 3"),
        ("train/1.png,train", r"malformed index\.csv row at line 3"),
        ("train/1.png,train,7", r"label 7 at index\.csv line 3 .* out of range for 3 classes"),
    ],
)
def test_bad_index_row(fake, row, pattern):
    index = "path,split,label\ntrain/0.png,train,0\n" + row + "\ntest/0.png,test,1\n"
    fake.classification(index=index)
    with pytest.raises(bd.CorruptArchiveError, match=r"fake\.zip.*" + pattern):
        bd.load_classification("fake", "train")


def test_bad_header(fake):
    fake.classification(index="file,split,label\ntrain/0.png,train,0\n")
    with pytest.raises(bd.CorruptArchiveError, match="header"):
        bd.load_classification("fake", "train")


def test_missing_member(fake):
    imgs, _ = fake.classification()
    members = {p: _png(a) for p, a in imgs.items() if p != "train/2.png"}
    fake.classification(members=members)
    with pytest.raises(
        bd.CorruptArchiveError, match=r"member 'train/2\.png' \(index\.csv line 4\).*absent"
    ):
        bd.load_classification("fake", "train")


def test_undecodable_member(fake):
    imgs, _ = fake.classification()
    members = {p: _png(a) for p, a in imgs.items()}
    members["train/1.png"] = b"\x89PNG garbage"
    fake.classification(members=members)
    with pytest.raises(bd.CorruptArchiveError, match=r"cannot decode image member 'train/1\.png'"):
        bd.load_classification("fake", "train")


def test_unknown_split(fake):
    fake.classification()
    with pytest.raises(
        bd.UnknownSplitError, match=r"unknown split 'val'.*valid splits: train, test, all"
    ):
        bd.load_classification("fake", "val")
    with pytest.raises(ValueError):
        bd.load_classification("fake", "validation")


def test_wrong_kind(fake):
    fake.segmentation()
    with pytest.raises(bd.DataError, match="segmentation item, not classification"):
        bd.load_classification("fakeseg", "all")


# -------------------------------------------------------------- decode and cache


def test_round_trip_classification(fake):
    imgs, labels = fake.classification()
    arr = bd.load_classification("fake", "train")
    train = [p for p in imgs if p.startswith("train/")]
    assert arr.images.dtype == np.uint8 and arr.images.shape == (3, 5, 4, 3)
    assert arr.labels.dtype == np.int64
    np.testing.assert_array_equal(arr.images, np.stack([imgs[p] for p in train]))
    np.testing.assert_array_equal(arr.labels, [labels[p] for p in train])
    assert arr.classes == ["a", "b", "c"] == bd.load_classes("fake")
    everything = bd.load_classification("fake", "all")
    np.testing.assert_array_equal(everything.images, np.stack(list(imgs.values())))
    assert bd.split_counts("fake") == {"train": 3, "test": 2}
    assert bd.class_splits("fake") == {"train": [0, 1, 2], "test": [0, 1]}
    used = bd.used_checksums()
    assert used["fake/fake.zip"] == _sha(fake.root / "fake" / "fake.zip")
    assert "fake/classes.json" in used

    ds = bd.ClassificationDataset(arr, transform=lambda x: x * 2)
    x, y = ds[1]
    assert isinstance(y, int) and y == labels[train[1]] and len(ds) == 3 and ds.arrays is arr
    assert x.dtype == torch.float32 and x.shape == (3, 5, 4)
    torch.testing.assert_close(
        x, 2 * torch.from_numpy(imgs[train[1]]).permute(2, 0, 1).float() / 255
    )
    x0, _ = bd.ClassificationDataset("fake", "test")[0]
    assert 0.0 <= float(x0.min()) and float(x0.max()) <= 1.0


def test_cache_hit_skips_decode(fake, monkeypatch):
    imgs, _ = fake.classification()
    first = bd.load_classification("fake", "test")
    sha = _sha(fake.root / "fake" / "fake.zip")
    cached = sorted(p.name for p in fake.cache.glob("*.npy"))
    assert cached and all(n.startswith(f"fake-{sha[:16]}-test-") for n in cached)

    def boom(*a, **k):
        raise AssertionError("decoder called although the cache is warm")

    monkeypatch.setattr(bd_archive, "decode_images", boom)
    second = bd.load_classification("fake", "test")
    np.testing.assert_array_equal(first.images, second.images)
    np.testing.assert_array_equal(first.labels, second.labels)
    with pytest.raises(AssertionError, match="decoder called"):
        bd.load_classification("fake", "train")  # a different split is not cached yet


@pytest.mark.parametrize("damage", ["garbage", "truncate", "empty"])
def test_corrupt_cache_is_rebuilt(fake, damage):
    imgs, _ = fake.classification()
    first = bd.load_classification("fake", "train")
    sha = _sha(fake.root / "fake" / "fake.zip")
    target = bd_cache.cache_path("fake", sha, "train", "images")
    assert target.is_file()
    good = target.read_bytes()
    target.write_bytes(
        {"garbage": b"not numpy" * 50, "truncate": good[: len(good) - 10], "empty": b""}[damage]
    )
    again = bd.load_classification("fake", "train")
    np.testing.assert_array_equal(again.images, first.images)
    assert np.load(target).shape == first.images.shape  # rewritten


def test_unwritable_cache_only_warns(fake, monkeypatch, tmp_path):
    fake.classification()
    blocker = tmp_path / "file-not-dir"
    blocker.write_text("x")
    monkeypatch.setenv("BACKDOORBOOK_CACHE", str(blocker / "sub"))
    with pytest.warns(RuntimeWarning, match="could not write data cache"):
        arr = bd.load_classification("fake", "train")
    assert len(arr) == 3


def test_round_trip_segmentation(fake, monkeypatch):
    imgs, masks = fake.segmentation()
    seg = bd.load_segmentation("fakeseg", "all")
    assert seg.classes == ["bg", "fg"] and seg.ignore_index == 255 and len(seg) == 3
    for a, b in zip(seg.images, imgs):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(seg.masks, masks):
        assert a.dtype == np.uint8
        np.testing.assert_array_equal(a, b)
    monkeypatch.setattr(bd_archive, "decode_images", lambda *a, **k: 1 / 0)
    cached = bd.load_segmentation("fakeseg", "all")
    for a, b in zip(cached.masks, masks):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(cached.images, imgs):
        np.testing.assert_array_equal(a, b)

    ds = bd.SegmentationDataset(cached, transform=lambda x, y: (x.flip(-1), y.flip(-1)))
    x, y = ds[1]
    assert (
        x.shape == (3, 9, 4)
        and x.dtype == torch.float32
        and y.dtype == torch.int64
        and y.shape == (9, 4)
    )
    torch.testing.assert_close(y, torch.from_numpy(masks[1]).long().flip(-1))


# ------------------------------------------------------------------- real mirror


@pytest.fixture(scope="module")
def real_env(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.delenv("BACKDOORBOOK_MANIFESTS", raising=False)
    mp.setenv("BACKDOORBOOK_CACHE", str(tmp_path_factory.mktemp("bbcache")))
    yield
    mp.undo()


@needs_real
def test_real_manifests_match_files(real_env):
    sums = {}
    for root in bd.data_roots():
        f = root / "SHA256SUMS"
        if f.is_file():
            for line in f.read_text().splitlines():
                h, p = line.split(maxsplit=1)
                sums.setdefault(p.removeprefix("./"), h)
    for name in bd.DATASET_NAMES:
        m = bd.load_manifest(name)
        for f in m.files:
            path = bd.locate(name, f.path)  # verifies sha256
            assert path.stat().st_size == f.size, f.path
            if sums:
                assert sums[f.path] == f.sha256, f.path
        if m.kind != "checkpoints":
            assert bd.split_counts(name) == m.splits, name
    used = bd.used_checksums()
    for name in bd.DATASET_NAMES:
        for f in bd.load_manifest(name).files:
            assert used[f.path] == f.sha256


@needs_real
def test_real_classes(real_env):
    expected = {
        "cifar10": 10,
        "gtsrb": 43,
        "camvid": 11,
        "weizmann_horse": 2,
        "miniimagenet": 100,
        "imagenette": 10,
    }
    for name, n in expected.items():
        classes = bd.load_classes(name)
        assert len(classes) == n and all(isinstance(c, str) and c for c in classes)
    assert bd.load_classes("cifar10")[0] == "airplane"
    assert bd.load_classes("miniimagenet")[0] == "house finch"  # names, not wnids


@needs_real
def test_real_cifar10_test(real_env):
    arr = bd.load_classification("cifar10", "test")
    assert arr.images.shape == (10000, 32, 32, 3) and arr.images.dtype == np.uint8
    assert arr.labels.shape == (10000,) and arr.labels.dtype == np.int64
    assert arr.labels.min() == 0 and arr.labels.max() == 9
    assert np.bincount(arr.labels).tolist() == [1000] * 10
    x, y = bd.ClassificationDataset(arr)[0]
    assert x.shape == (3, 32, 32) and 0 <= y < 10


@needs_real
def test_real_camvid_masks(real_env):
    seg = bd.load_segmentation("camvid", "val")
    assert len(seg) == 101 and seg.ignore_index == 255
    values = np.unique(np.concatenate([np.unique(m) for m in seg.masks]))
    assert set(values.tolist()) <= set(range(len(seg.classes))) | {255}
    assert all(
        i.shape == (180, 240, 3) and m.shape == (180, 240) for i, m in zip(seg.images, seg.masks)
    )


@needs_real
def test_real_miniimagenet_class_splits(real_env):
    raw = bd.load_classes_json("miniimagenet")
    wnids = raw["classes"]
    splits = bd.class_splits("miniimagenet")
    assert {k: len(v) for k, v in splits.items()} == {"train": 64, "val": 16, "test": 20}
    for split, idx in splits.items():
        assert sorted(wnids[i] for i in idx) == sorted(raw["ravi_split"][split])


@needs_real
def test_real_single_split_datasets(real_env):
    assert bd.split_counts("weizmann_horse") == {"all": 328}
    assert bd.split_counts("imagenette") == {"val": 500}
    with pytest.raises(bd.UnknownSplitError, match="valid splits: val, all"):
        bd.load_classification("imagenette", "train")
