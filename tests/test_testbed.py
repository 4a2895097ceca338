"""The testbed table: every bar an artifact records, its measured value and whether it is met;
artifacts without bars or without any measure say so."""

import json

import pytest

from backdoorbook.book.testbed import artifact_quality_table


def _write(directory, name, **record):
    base = {"device": "cpu (1 threads, x86_64)", "wall_time_s": 600.0}
    (directory / f"{name}.provenance.json").write_text(json.dumps(base | record))


def test_bars_are_compared_and_unbarred_or_unmeasured_artifacts_say_so(tmp_path):
    _write(
        tmp_path,
        "victim",
        recipe_module="backdoorbook.recipes.zip_victims",
        commit="c9a4046cebea1234",
        quality={"test_accuracy": 84.3, "test_asr": 88.0, "test_n": 10000},
        quality_bar={"test_accuracy": 80.0, "test_asr": 90.0},
    )
    _write(tmp_path, "target", quality={"test_accuracy": 87.9}, quality_bar=88.0)
    _write(tmp_path, "control", quality={"test_accuracy": 91.0})
    _write(tmp_path, "legacy", command="python old_script.py")
    _write(tmp_path, "half", quality={"a": 1.0}, quality_bar={"a": 0.5, "b": 2.0})
    table = artifact_quality_table(
        ["victim", "target", "control", "legacy", "half", "victim"], tmp_path
    )
    assert table["met"].to_dict() == {
        ("victim", "test_accuracy"): "met",
        ("victim", "test_asr"): "not met",
        ("target", "test_accuracy"): "not met",
        ("control", "—"): "—",
        ("legacy", "—"): "—",
        ("half", "a"): "met",
        ("half", "b"): "not measured",
    }
    assert table.loc[("victim", "test_asr"), "also measured"] == "test_n 10000"
    assert table.loc[("control", "—"), "also measured"] == "test_accuracy 91"
    assert table.loc[("legacy", "—"), "also measured"] == "not measured"
    assert table.loc[("victim", "test_asr"), "made by"] == (
        "python -m backdoorbook.recipes.zip_victims at c9a4046cebea"
    )
    assert table.loc[("legacy", "—"), "made by"].startswith("made before the recipes")
    assert table.loc[("target", "test_accuracy"), "training"] == "10 min on cpu (1 threads, x86_64)"


def test_an_unknown_artifact_is_named(tmp_path):
    from backdoorbook.artifacts import ArtifactError

    with pytest.raises(ArtifactError, match="no artifact 'nope'"):
        artifact_quality_table(["nope"], tmp_path)


def test_bar_summary_names_every_unmet_bar_and_unmeasured_artifact(tmp_path):
    from backdoorbook.book.testbed import bar_summary

    _write(tmp_path, "ok", quality={"a": 2.0}, quality_bar={"a": 1.0})
    _write(tmp_path, "short", quality={"a": 0.5}, quality_bar={"a": 1.0})
    _write(tmp_path, "legacy")
    assert bar_summary(artifact_quality_table(["ok"], tmp_path)) == "All 1 bars are met."
    assert bar_summary(artifact_quality_table(["ok", "short", "legacy"], tmp_path)) == (
        "1 of 2 bars not met: short a 0.5 against 1 (10 min on cpu (1 threads, x86_64)). "
        "No recorded measure: legacy."
    )
    assert bar_summary(artifact_quality_table(["legacy"], tmp_path)) == (
        "No artifact here records a bar. No recorded measure: legacy."
    )


def test_a_record_older_than_its_recipes_bars_is_held_to_todays_bars(tmp_path):
    measured = {"test_accuracy": 79.0, "test_asr": 95.0}
    _write(
        tmp_path, "old_victim", recipe_module="backdoorbook.recipes.zip_victims", quality=measured
    )
    _write(  # today's bars name measures this record lacks: no bar is invented
        tmp_path, "old_other", recipe_module="backdoorbook.recipes.zip_victims", quality={"x": 1.0}
    )
    table = artifact_quality_table(["old_victim", "old_other"], tmp_path)
    assert table["met"].to_dict() == {
        ("old_victim", "test_accuracy"): "not met",
        ("old_victim", "test_asr"): "met",
        ("old_other", "—"): "—",
    }
    assert table.loc[("old_victim", "test_accuracy"), "bar"] == 80.0
