"""The book's generated pages: the scorecard and the execution report.

Both are MyST markdown built from the chapters' results records (:mod:`backdoorbook.book.chapter`)
and, for the execution report, the build's own timing log.
"""

from __future__ import annotations

from pathlib import Path

from ..claims.core import VERDICTS


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


def _effect_cell(claim: dict) -> str:
    """``effect [low, high] vs ≥ threshold (n); measure`` of a claim's deciding criterion."""
    sign = "≥" if claim["direction"] == "at least" else "≤"
    return (
        f"{claim['effect']:.1f} [{claim['ci_low']:.1f}, {claim['ci_high']:.1f}] vs "
        f"{sign} {claim['threshold']:g} (n = {claim['n']}); {claim['measure']}"
    )


def forest_plot_name(chapter: str) -> str:
    """The file name of a chapter's forest plot, beside the scorecard."""
    return f"forest_{chapter}.png"


def write_forest_plots(records: list[dict], directory: Path) -> list[Path]:
    """One forest plot per chapter with interval claims: each criterion's effect and 95 % interval
    against its threshold, coloured by verdict. Returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {"reproduced": "tab:green", "not reproduced": "tab:red", "inconclusive": "tab:orange"}
    written = []
    for rec in records:
        rows = [(c["id"], k) for c in rec.get("claims", []) for k in c.get("criteria", [])]
        if not rows:
            continue
        fig, axes = plt.subplots(len(rows), 1, figsize=(7.5, 0.55 * len(rows) + 0.6), squeeze=False)
        for ax, (claim_id, k) in zip(axes[:, 0], rows):
            ax.errorbar(
                [k["effect"]],
                [0],
                xerr=[[k["effect"] - k["ci_low"]], [k["ci_high"] - k["effect"]]],
                fmt="o",
                color=colours[k["verdict"]],
                capsize=4,
            )
            ax.axvline(k["threshold"], color="0.3", ls="--", lw=1)
            ax.set_yticks([0], [f"{claim_id}: {k['measure']}"], fontsize="x-small")
            lo, hi = min(k["ci_low"], k["threshold"]), max(k["ci_high"], k["threshold"])
            pad = 0.15 * (hi - lo) + 1
            ax.set_xlim(lo - pad, hi + pad)
            ax.tick_params(axis="x", labelsize="x-small")
        fig.suptitle(
            f"{rec['title']}: effect and 95 % interval (dashed: threshold)", fontsize="small"
        )
        fig.tight_layout()
        path = directory / forest_plot_name(rec["chapter"])
        directory.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def render_scorecard(records: list[dict], figures: Path | None = None) -> str:
    """Counts of the three verdicts per chapter and in all, then per chapter its forest plot
    (when ``figures`` holds one) and a table: claim, verdict, effect with its interval against
    the threshold, the paper's figure (with tag), ours and the rule."""
    claims = [(rec, c) for rec in records for c in rec.get("claims", [])]
    if not claims:
        raise ValueError("no claims in any results record: the scorecard would be empty")

    def count(items, verdict):
        return sum(c["verdict"] == verdict for c in items)

    total = {v: count([c for _, c in claims], v) for v in VERDICTS}
    summary = [
        [
            rec["title"],
            len(rec["claims"]),
            *(count(rec["claims"], v) for v in VERDICTS),
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
        "build. A claim's effect is computed by the run with its 95 % interval; the threshold "
        "was fixed in code before the chapter ran. The verdict is *reproduced* when the whole "
        "interval clears the threshold, *not reproduced* when the whole interval falls short, "
        "and *inconclusive* when it straddles the threshold.",
        f"**{len(claims)} claims: {total['reproduced']} reproduced, "
        f"{total['not reproduced']} not reproduced, {total['inconclusive']} inconclusive.**",
        "The last column counts the departures from the authors' code that each chapter "
        "declares in its Fidelity table, which it shows just before its claims.",
        _table(
            [
                "Chapter",
                "Claims",
                "Reproduced",
                "Not reproduced",
                "Inconclusive",
                "Deviations declared",
            ],
            summary,
        ),
    ]
    for rec in records:
        if not rec.get("claims"):
            continue
        rows = []
        for c in rec["claims"]:
            paper = f"{c['paper']} {c['source']}" if c.get("paper") else "not available"
            verdict = f"**{c['verdict']}**" + (f" — {c['note']}" if c.get("note") else "")
            rows.append([c["statement"], verdict, _effect_cell(c), paper, c["ours"], c["rule"]])
        parts += [
            f"## {rec['title']}",
            f"Deviations from the authors' code: {_fidelity_cell(rec)}.",
        ]
        if figures is not None and (figures / forest_plot_name(rec["chapter"])).exists():
            parts.append(f"![Forest plot of {rec['title']}]({forest_plot_name(rec['chapter'])})")
        parts.append(
            _table(
                ["Claim", "Verdict", "Effect [95 % CI] vs threshold (n)", "Paper", "Ours", "Rule"],
                rows,
            )
        )
    return "\n\n".join(parts) + "\n"


def render_execution_report(
    records: list[dict], build_log: dict, stability: dict | None = None
) -> str:
    """Per chapter: profile, device, wall time, peak memory, commit, versions and data checksums;
    then the stored seed-stability table (``stability``, from :mod:`backdoorbook.book.stability`)
    for the build's profile, or a line saying there is none."""
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
    jobs = build_log.get("jobs", 1)
    layout = "one chapter at a time" if jobs == 1 else f"{jobs} chapters at a time, one core each"
    parts = [
        "# Execution report",
        f"Built {build_log['finished_at']} with profile `{build_log['profile']}` on "
        f"{build_log['machine']}, {layout}: {build_log['total_wall_time_s']:.1f} s from the "
        f"first chapter's start to the last one's end, "
        f"{build_log.get('total_chapter_time_s', build_log['total_wall_time_s']):.1f} s of "
        "chapter time in all. Wall time is measured by the build around each notebook (kernel "
        "start included); peak memory is the kernel's peak resident set.",
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
    parts += _stability_section(stability, build_log["profile"])
    return "\n\n".join(parts) + "\n"


def _stability_section(stability: dict | None, profile: str) -> list[str]:
    from .stability import verdict_rows

    rows = verdict_rows(stability or {}, profile)
    parts = ["## Seed stability"]
    if not rows:
        return parts + [
            f"No seed-stability table for profile `{profile}` is stored "
            "(`python -m backdoorbook.book.stability` makes one; the build does not run it)."
        ]
    entries = [e for e in stability["entries"] if e["profile"] == profile]
    commits = sorted({e.get("git_commit", "")[:12] for e in entries if e.get("git_commit")})
    parts.append(
        f"Every claim's verdict when the chapter is rebuilt under other seeds (profile "
        f"`{profile}`; stored table, updated {stability['updated_at']} at commit(s) "
        f"{', '.join(f'`{c}`' for c in commits) or 'none'}; this build did not rerun it). "
        "A verdict that changes with the seed is decided by sampling noise. The seed drives "
        "each chapter's own randomness; a shipped artifact keeps the seed it was trained with, "
        "except the cheap ones also shipped trained under that seed (each chapter's record "
        "lists the seed of every artifact it loaded)."
    )
    for chapter, table in rows.items():
        stable = sum(row[-1] == "yes" for row in table[1:])
        parts += [
            f"### {chapter}: {stable} of {len(table) - 1} claims stable",
            _table(table[0], table[1:]),
        ]
    return parts
