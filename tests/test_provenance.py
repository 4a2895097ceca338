"""Every shipped artifact can be rebuilt from its record: a clean commit of this history holding
its recipe module, and a record the inventory (python -m backdoorbook.recipes) can read."""

import subprocess

import pytest

from backdoorbook.artifacts import ARTIFACTS_DIR, SOURCE_ROOT, artifact_provenance, code_fingerprint
from backdoorbook.recipes.__main__ import inventory, staleness

ROOT = ARTIFACTS_DIR.parent
NAMES = sorted(
    p.name.removesuffix(".provenance.json") for p in ARTIFACTS_DIR.glob("*.provenance.json")
)
#: Artifacts made before recipes recorded a clean commit; each leaves this set when retrained.
LEGACY = {
    "cifar10_mobilenetv2",
    "cifar10_vit",
    "iba_camvid_clean_w16_120x90",
    "mini_sam_camvid",
}


def _git(*args) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=pytest.mark.xfail(strict=True, reason="made before recipes"))
        if n in LEGACY
        else n
        for n in NAMES
    ],
)
def test_artifact_was_made_at_a_clean_commit_of_this_history_by_its_recipe(name):
    record = artifact_provenance(name)
    commit = record.get("commit", "")
    assert commit and not commit.endswith("-dirty"), f"{name} was made from {commit or 'no commit'}"
    assert _git("merge-base", "--is-ancestor", commit, "HEAD").returncode == 0, commit
    module = record["recipe_module"].removeprefix("backdoorbook.").replace(".", "/")
    assert _git("cat-file", "-e", f"{commit}:src/backdoorbook/{module}.py").returncode == 0
    assert (
        record["code_fingerprints"]
        and record["sources"].keys() == record["code_fingerprints"].keys()
    )


def test_the_inventory_lists_every_artifact_and_tells_stale_from_current(tmp_path):
    rows = {row["artifact"]: row for row in inventory()}
    assert set(rows) == set(NAMES)
    assert {rows[n]["status"] for n in LEGACY} == {"legacy"}
    record = {"code_fingerprints": {"backdoorbook/runtime.py": "0" * 64}}
    assert staleness(record) == ("stale", ["backdoorbook/runtime.py"])
    today = code_fingerprint((SOURCE_ROOT / "backdoorbook/runtime.py").read_text())
    assert staleness({"code_fingerprints": {"backdoorbook/runtime.py": today}}) == ("current", [])
    assert staleness({"code_fingerprints": {}}) == ("legacy", [])
