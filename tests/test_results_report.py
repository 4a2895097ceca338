import json
from pathlib import Path

import numpy as np
import pytest
import torch

from backdoorbook import runtime
from backdoorbook.book import chapter as results
from backdoorbook.book.report import render_execution_report, render_scorecard
from backdoorbook.claims.core import Criterion, make_claim
from backdoorbook.claims.intervals import Interval


def _claim(id, statement, *, holds, **fields):
    """A claim decided by one criterion: an effect of 3 [2, 4] against the bar 1 (reproduced) or 5
    (not reproduced)."""
    effect = Interval(3.0, 2.0, 4.0, n=50)
    criterion = Criterion("A minus B (points)", effect, threshold=1.0 if holds else 5.0)
    fields = {"rule": "A - B >= bar", "ours": "3 [2, 4]"} | fields
    return make_claim(id, statement, criterion, **fields)


def test_claim_validation():
    with pytest.raises(ValueError, match="at least one criterion with its interval"):
        results.Claim("a", "s", "r", "o", "reproduced")
    with pytest.raises(ValueError, match="verdict must be one of"):
        results.Claim("a", "s", "r", "o", verdict="maybe")
    with pytest.raises(ValueError, match="source tag must be one of"):
        _claim("a", "s", holds=True, paper="1", source="[paper]")
    with pytest.raises(ValueError, match="needs a source tag"):
        _claim("a", "s", holds=True, paper="1")


def test_to_jsonable_converts_tensors_and_numpy():
    value = {
        "t": torch.tensor([1.5, 2.0]),
        "n": np.int64(3),
        "a": np.zeros(2),
        4: (1, float("nan")),
    }
    assert results.to_jsonable(value) == {"t": [1.5, 2.0], "n": 3, "a": [0.0, 0.0], "4": [1, "nan"]}


def test_chapter_run_writes_a_complete_record(tmp_path):
    run = results.ChapterRun("00_data", "The data", profile="ci", seed=7, device="cpu")
    run.metrics["accuracy"] = {"resnet20": np.float32(91.5)}
    run.add_claim(
        _claim(
            "acc",
            "ResNet-20 near 91.8 %",
            holds=True,
            rule="|a - 91.78| < 2",
            ours="91.5 %",
            paper="91.78 %",
            source="[code]",
        )
    )
    with pytest.raises(ValueError, match="duplicate claim id"):
        run.add_claim(run.claims[0])
    path = run.finish(tmp_path)
    record = json.loads(path.read_text())
    for key in (
        "chapter",
        "profile",
        "profile_settings",
        "device",
        "seed",
        "git_commit",
        "data_checksums",
        "wall_time_s",
        "peak_memory_mb",
        "versions",
        "metrics",
        "claims",
    ):
        assert key in record, key
    assert record["seed"] == 7 and record["device"].startswith("cpu")
    assert record["threads"] == torch.get_num_threads() >= 1  # the data profile: every core
    assert results.ChapterRun("04_clip_defenses", "CLIP", device="cpu").threads == 1  # profile
    assert record["metrics"]["accuracy"]["resnet20"] == pytest.approx(91.5)
    assert results.load_records(tmp_path)[0]["claims"][0]["verdict"] == "reproduced"


def test_chapter_run_rejects_unknown_profile():
    with pytest.raises(ValueError, match="valid profiles: ci, paper"):
        results.ChapterRun("00_data", "The data", profile="fast")


def _record(chapter, claims):
    return {
        "chapter": chapter,
        "title": f"Title {chapter}",
        "device": "cpu (2 threads)",
        "peak_memory_mb": 900.0,
        "git_commit": "a" * 40,
        "seed": 0,
        "threads": 2,
        "started_at": "2026-11-21T06:00:00+00:00",
        "wall_time_s": 12.0,
        "versions": {"torch": "2.14.1"},
        "data_checksums": {"cifar10/cifar10.zip": "d1"},
        "claims": claims,
    }


def test_scorecard_lists_every_claim_and_refuses_to_be_empty():
    claim = _claim(
        "x",
        "a | b",
        holds=False,
        rule="r",
        ours="o",
        paper="95 %",
        source="[review]",
        note="too few epochs",
    )
    page = render_scorecard([_record("01_a", [claim.__dict__]), _record("02_b", [])])
    assert "1 claims: 0 reproduced, 1 not reproduced" in page
    assert "a \\| b" in page and "95 % [review]" in page and "too few epochs" in page
    with pytest.raises(ValueError, match="scorecard would be empty"):
        render_scorecard([_record("02_b", [])])


def test_execution_report_has_one_row_per_chapter():
    log = {
        "profile": "ci",
        "machine": "m",
        "finished_at": "t",
        "total_wall_time_s": 20.0,
        "chapters": [{"chapter": "01_a", "profile": "ci", "wall_time_s": 20.0, "status": "ok"}],
    }
    page = render_execution_report([_record("01_a", [])], log)
    assert "| 01_a | ci | cpu (2 threads) | 20.0 | 900.0 | aaaaaaaaaaaa | ok |" in page
    assert "`d1`" in page and "torch 2.14.1" in page


def test_scorecard_counts_three_verdicts_and_shows_intervals_and_forest_plots(tmp_path):
    from backdoorbook.book.report import forest_plot_name, write_forest_plots
    from backdoorbook.claims.core import Criterion, make_claim
    from backdoorbook.claims.intervals import Interval

    def claim(id, low, high):
        criterion = Criterion("ASR gain (points)", Interval((low + high) / 2, low, high, 64), 20.0)
        return make_claim(id, f"claim {id}", criterion, rule="gain >= 20", ours="o").as_dict()

    record = {
        "chapter": "09_x",
        "title": "X",
        "fidelity_label": None,
        "claims": [claim("a", 25, 35), claim("b", 5, 15), claim("c", 15, 25)],
    }
    written = write_forest_plots([record], tmp_path)
    assert [p.name for p in written] == [forest_plot_name("09_x")] and written[0].stat().st_size
    page = render_scorecard([record], figures=tmp_path)
    assert "**3 claims: 1 reproduced, 1 not reproduced, 1 inconclusive.**" in page
    assert "30.0 [25.0, 35.0] vs ≥ 20 (n = 64); ASR gain (points)" in page
    assert f"]({forest_plot_name('09_x')})" in page


def test_finish_returns_a_path_relative_to_the_checkout_when_the_record_lies_inside():
    import shutil

    inside = runtime.REPO_ROOT / ".cache" / "test_results"
    try:
        path = results.ChapterRun("00_data", "The data", device="cpu").finish(inside)
        assert not path.is_absolute() and (runtime.REPO_ROOT / path).exists()
        assert path == Path(".cache/test_results/00_data.json")
    finally:
        shutil.rmtree(inside, ignore_errors=True)


def test_a_chapter_run_prints_numpy_scalars_as_bare_numbers_for_glue():
    results.ChapterRun("00_data", "The data", device="cpu")
    assert repr(np.float64(10.22)) == "10.22" and float(repr(np.float32(2.5))) == 2.5
