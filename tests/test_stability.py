"""The seed-stability table: one entry per chapter, profile and seed, merged across runs, shown
in the execution report with each claim's verdict per seed."""

import json

from backdoorbook.book import stability
from backdoorbook.book.report import render_execution_report


def _entry(chapter, seed, verdicts, status="ok"):
    claims = [{"id": i, "verdict": v, "effect": 1.0} for i, v in verdicts.items()]
    return {"chapter": chapter, "profile": "ci", "seed": seed, "status": status, "claims": claims}


def test_merge_replaces_the_same_chapter_profile_and_seed_and_keeps_the_rest():
    old = {"entries": [_entry("01_a", 0, {"x": "reproduced"}), _entry("01_a", 1, {"x": "x"})]}
    table = stability.merge(old, [_entry("01_a", 1, {"x": "inconclusive"}), _entry("00_z", 2, {})])
    assert [(e["chapter"], e["seed"]) for e in table["entries"]] == [
        ("00_z", 2),
        ("01_a", 0),
        ("01_a", 1),
    ]
    assert table["entries"][2]["claims"][0]["verdict"] == "inconclusive"


def test_verdict_rows_mark_claims_whose_verdict_changes_with_the_seed():
    table = {
        "entries": [
            _entry("01_a", 0, {"x": "reproduced", "y": "inconclusive"}),
            _entry("01_a", 1, {"x": "reproduced", "y": "not reproduced"}),
            {"chapter": "01_a", "profile": "ci", "seed": 2, "status": "failed", "error": "e"},
            _entry("01_a", 0, {"x": "not reproduced"}) | {"profile": "paper"},
        ]
    }
    assert stability.verdict_rows(table, "ci") == {
        "01_a": [
            ["Claim", "seed 0", "seed 1", "seed 2", "Stable"],
            ["x", "reproduced", "reproduced", "failed", "no"],
            ["y", "inconclusive", "not reproduced", "failed", "no"],
        ]
    }
    two_seeds = {"entries": table["entries"][:1] + [_entry("01_a", 1, {"x": "reproduced"})]}
    assert stability.verdict_rows(two_seeds, "ci")["01_a"][1:] == [
        ["x", "reproduced", "reproduced", "yes"],
        ["y", "inconclusive", "—", "no"],
    ]


def test_run_seed_summarises_each_chapters_record_or_its_failure(monkeypatch):
    claim = {
        "id": "x",
        "statement": "s",
        "rule": "r",
        "ours": "o",
        "verdict": "not reproduced",
        "effect": 2.0,
        "ci_low": -1.0,
        "ci_high": 5.0,
        "threshold": 0.0,
        "n": 64,
        "measure": "gain (points)",
        "direction": "at least",
        "criteria": [{"measure": "gain (points)", "threshold": 0.0}],
    }

    def fake_execute(stems, profile, seed, out_dir, results, jobs, keep_going):
        assert keep_going and jobs == 2 and seed == 4
        results.mkdir(parents=True)
        record = {"chapter": "01_a", "git_commit": "abc", "claims": [claim]}
        (results / "01_a.json").write_text(json.dumps(record))
        failed = {"status": "failed", "error": "chapter 02_b failed in cell 3: boom\n  more"}
        return {
            "chapters": [
                {"chapter": "01_a", "wall_time_s": 3.5, "status": "ok"},
                {"chapter": "02_b", "wall_time_s": 1.0} | failed,
            ]
        }

    monkeypatch.setattr(stability, "execute_chapters", fake_execute)
    ok, failed = stability.run_seed(["01_a", "02_b"], "ci", 4, jobs=2)
    assert ok["status"] == "ok" and ok["seed"] == 4 and ok["wall_time_s"] == 3.5
    assert ok["claims"] == [
        {"id": "x", "verdict": "not reproduced", "effect": 2.0, "ci_low": -1.0, "ci_high": 5.0}
        | {"threshold": 0.0, "n": 64}
    ]
    assert failed == {
        "chapter": "02_b",
        "profile": "ci",
        "seed": 4,
        "status": "failed",
        "error": "chapter 02_b failed in cell 3: boom",
    }


def test_execution_report_shows_the_stored_table_or_says_there_is_none():
    log = {
        "profile": "ci",
        "machine": "m",
        "finished_at": "t",
        "jobs": 2,
        "total_wall_time_s": 12.0,
        "total_chapter_time_s": 20.0,
        "chapters": [],
    }
    assert "No seed-stability table for profile `ci`" in render_execution_report([], log)
    table = stability.merge(
        {},
        [
            _entry("01_a", 0, {"x": "reproduced", "y": "inconclusive"}) | {"git_commit": "c0ffee"},
            _entry("01_a", 1, {"x": "reproduced", "y": "reproduced"}) | {"git_commit": "c0ffee"},
        ],
    )
    page = render_execution_report([], log, table)
    assert "2 chapters at a time, one core each: 12.0 s" in page and "20.0 s of chapter" in page
    assert "### 01_a: 1 of 2 claims stable" in page and "`c0ffee`" in page
    assert "| y | inconclusive | reproduced | no |" in page
