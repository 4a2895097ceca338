"""The book's generated pages: the scorecard and the execution report.

Both are MyST markdown built from the chapters' results records (:mod:`backdoorbook.book.chapter`)
and, for the execution report, the build's own timing log.
"""

from __future__ import annotations


def _cell(text) -> str:
    """Make ``text`` safe inside a markdown table cell."""
    return str(text if text is not None else "—").replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _fidelity_cell(record: dict) -> str:
    """How many deviations a chapter declares, linked to its Fidelity table when it shows one."""
    if not record.get("fidelity_label"):
        return "no Fidelity table"
    count = len(record.get("fidelity", []))
    return f"{{ref}}`{count} declared <{record['fidelity_label']}>`"


def render_scorecard(records: list[dict]) -> str:
    """A summary per chapter, then one table per chapter: claim, verdict, paper's figure (with tag),
    ours, rule."""
    claims = [(rec, c) for rec in records for c in rec.get("claims", [])]
    if not claims:
        raise ValueError("no claims in any results record: the scorecard would be empty")
    tally = {v: sum(c["verdict"] == v for _, c in claims) for v in ("reproduced", "not reproduced")}
    summary = [
        [
            rec["title"],
            len(rec["claims"]),
            sum(c["verdict"] == "reproduced" for c in rec["claims"]),
            _fidelity_cell(rec),
        ]
        for rec in records
        if rec.get("claims")
    ]
    parts = [
        "# Scorecard",
        "Every claim checked by a chapter of this build, with the paper's figure where one is "
        "known (source tags as in the introduction: [abs] abstract, [code] authors' code, "
        "[review] public reviews, [3p] third party, [?] unconfirmed) and our figure from this "
        "build. The rule and its threshold were fixed in code before the chapter ran.",
        f"**{len(claims)} claims: {tally['reproduced']} reproduced, "
        f"{tally['not reproduced']} not reproduced.**",
        "The last column counts the departures from the authors' code that each chapter "
        "declares in its Fidelity table, which it shows just before its claims.",
        _table(["Chapter", "Claims", "Reproduced", "Deviations declared"], summary),
    ]
    for rec in records:
        if not rec.get("claims"):
            continue
        rows = []
        for c in rec["claims"]:
            paper = f"{c['paper']} {c['source']}" if c.get("paper") else "not available"
            verdict = f"**{c['verdict']}**" + (f" — {c['note']}" if c.get("note") else "")
            rows.append([c["statement"], verdict, paper, c["ours"], c["rule"]])
        parts += [
            f"## {rec['title']}",
            f"Deviations from the authors' code: {_fidelity_cell(rec)}.",
            _table(["Claim", "Verdict", "Paper", "Ours", "Rule"], rows),
        ]
    return "\n\n".join(parts) + "\n"


def render_execution_report(records: list[dict], build_log: dict) -> str:
    """Per chapter: profile, device, wall time, peak memory, commit, versions and data checksums."""
    by_chapter = {r["chapter"]: r for r in records}
    rows = []
    for entry in build_log["chapters"]:
        rec = by_chapter.get(entry["chapter"], {})
        rows.append(
            [
                entry["chapter"],
                entry["profile"],
                rec.get("device"),
                f"{entry['wall_time_s']:.1f}",
                rec.get("peak_memory_mb"),
                rec.get("git_commit", "")[:12],
                entry["status"],
            ]
        )
    parts = [
        "# Execution report",
        f"Built {build_log['finished_at']} with profile `{build_log['profile']}` on "
        f"{build_log['machine']}; total notebook time {build_log['total_wall_time_s']:.1f} s. "
        "Wall time is measured by the build around each notebook (kernel start included); "
        "peak memory is the kernel's peak resident set.",
        _table(
            [
                "Chapter",
                "Profile",
                "Device",
                "Wall time (s)",
                "Peak memory (MiB)",
                "Commit",
                "Status",
            ],
            rows,
        ),
    ]
    for rec in records:
        versions = ", ".join(f"{k} {v}" for k, v in rec["versions"].items())
        checksums = (
            _table(
                ["File", "sha256"],
                [[f, f"`{h}`"] for f, h in sorted(rec["data_checksums"].items())],
            )
            if rec["data_checksums"]
            else "No data files read."
        )
        parts += [
            f"## {rec['chapter']}: {rec['title']}",
            f"Seed {rec['seed']}, {rec['threads']} threads, started {rec['started_at']}, "
            f"in-notebook time {rec['wall_time_s']:.1f} s, commit `{rec['git_commit']}`.",
            f"Versions: {versions}.",
            checksums,
        ]
    return "\n\n".join(parts) + "\n"
