import pytest
import torch

from backdoorbook.artifacts import (
    ArtifactError,
    artifact_provenance,
    load_artifact,
    save_artifact,
    used_artifacts,
)

PROVENANCE = {
    "command": "python -m x",
    "data_checksums": {"a": "b"},
    "wall_time_s": 1.0,
    "device": "cpu",
}


def test_round_trip_records_checksum_and_provenance(tmp_path):
    tensors = {"w": torch.arange(6.0).view(2, 3)}
    path = save_artifact("tiny", tensors, PROVENANCE, directory=tmp_path)
    record = artifact_provenance("tiny", tmp_path)
    assert (
        record["size"] == path.stat().st_size
        and len(record["sha256"]) == 64
        and record["command"] == "python -m x"
    )
    assert torch.equal(load_artifact("tiny", tmp_path)["w"], tensors["w"])
    assert used_artifacts()["artifacts/tiny.safetensors"] == record["sha256"]


def test_tampered_missing_and_unknown_artifacts_are_errors(tmp_path):
    path = save_artifact("tiny", {"w": torch.zeros(3)}, PROVENANCE, directory=tmp_path)
    path.write_bytes(path.read_bytes()[:-1] + b"\x01")
    with pytest.raises(
        ArtifactError, match="checksum mismatch .* expected [0-9a-f]{64}, got [0-9a-f]{64}"
    ):
        load_artifact("tiny", tmp_path)
    path.unlink()
    with pytest.raises(ArtifactError, match="missing; regenerate it with: python -m x"):
        load_artifact("tiny", tmp_path)
    with pytest.raises(ArtifactError, match="no artifact 'other' .* known artifacts: tiny"):
        load_artifact("other", tmp_path)
    with pytest.raises(ArtifactError, match="lacks command"):
        save_artifact(
            "bad",
            {"w": torch.zeros(1)},
            {"data_checksums": {}, "wall_time_s": 0, "device": "cpu"},
            directory=tmp_path,
        )


def test_corrupt_provenance_record_is_an_artifact_error_naming_the_file(tmp_path):
    (tmp_path / "broken.provenance.json").write_text('{"name": "broken", ')
    with pytest.raises(ArtifactError, match=r"broken\.provenance\.json is not valid JSON"):
        load_artifact("broken", tmp_path)


def test_loading_records_the_seed_each_artifact_was_trained_with(tmp_path):
    from backdoorbook.artifacts import used_artifact_seeds

    record = {"command": "c", "data_checksums": {}, "wall_time_s": 0, "device": "cpu", "seed": 7}
    save_artifact("seeded", {"w": torch.zeros(2)}, record, directory=tmp_path)
    load_artifact("seeded", tmp_path)
    assert used_artifact_seeds()["seeded"] == 7


def test_a_recipe_run_with_python_m_records_its_module_name(monkeypatch):
    import sys
    import types

    from backdoorbook.artifacts import provenance

    main = types.ModuleType("__main__")
    main.__spec__ = types.SimpleNamespace(name="backdoorbook.recipes.cifar_targets")
    monkeypatch.setitem(sys.modules, "__main__", main)
    record = provenance(
        "__main__",
        recipe={},
        seed=0,
        device=torch.device("cpu"),
        wall_time_s=1,
        argv=["--models", "vgg"],
        commit="a" * 40,
    )
    assert record["recipe_module"] == "backdoorbook.recipes.cifar_targets"
    assert record["command"] == "python -m backdoorbook.recipes.cifar_targets --models vgg"
    assert record["commit"] == "a" * 40


def test_seed_variants_name_and_parse_back():
    from backdoorbook.artifacts import seed_base, seed_variant

    assert seed_variant("iba_camvid_nni_10pct_w16_ds2", 0) == "iba_camvid_nni_10pct_w16_ds2"
    assert seed_variant("zip_victim_gtsrb_badnets", 1) == "zip_victim_gtsrb_badnets_s1"
    for name in ("zip_victim_gtsrb_badnets", "badsam_mini_adapted_5pct", "iba_camvid_clean_w16"):
        for seed in (0, 1, 12):
            assert seed_base(seed_variant(name, seed)) == (name, seed)
    assert seed_base("cifar10_vgg_small") == ("cifar10_vgg_small", 0)  # "_s" but no seed
