"""Chapter 5's claims: backdoors in few-shot fine-tuning.

Liu, Jia, Gu, Xun, Liang and Cao, "Does Few-shot Learning Suffer from Backdoor Attacks?",
AAAI 2024, arXiv:2401.01377 (FLBA). We have only the abstract's qualitative claims **[abs]**:
ordinary (BadNets-style) backdoors over-fit either the trigger or the benign features in
few-shot fine-tuning; FLBA reaches a high ASR and stays stealthy; both of its perturbations
are needed.

The unit is the episode. Every rule takes, per condition, one value per episode (a rate in
percent over that episode's queries) on the same seeded episodes: the same classes, support
and query images and head initialisation for every condition. So every effect is a paired
difference of means over episodes, with a seeded bootstrap interval
(:func:`~.intervals.paired_bootstrap`), and it is measured against a control on those episodes:

- an ASR against the clean head's ASR under the same trigger (the rate at which the trigger
  alone sends queries to the target);
- an accuracy against clean fine-tuning's;
- an ablation against the full attack.

Thresholds are fixed here, before any episode runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .core import Claim, Criterion, make_claim
from .intervals import Interval, paired_bootstrap

#: "High ASR": FLBA's mean episode ASR at least this many points above the clean head's under
#: the same patch. The chapter's bar of 80 % ASR, now on the lift over that control.
ASR_LIFT = 80.0
#: "Within a few points": FLBA's clean accuracy at most this many points below clean
#: fine-tuning's (the chapter's tolerance).
ACC_TOLERANCE = 5.0
#: "Each ablation is weaker": full FLBA's ASR at least this many points above each ablation's
#: (the chapter's gap).
ABLATION_GAP = 5.0
#: "ASR rises / accuracy falls as the poison rate rises": each step up in the poison rate moves
#: the rate by at least this many points (the chapter's "few points", as in the bars above).
TREND_STEP = 5.0

#: What the abstract says about ordinary backdoors, the source of the BadNets trend claims.
_BADNETS_PAPER = (
    "ordinary backdoors over-fit either the trigger or the benign features in few-shot fine-tuning"
)
#: The two ablations of FLBA, as chapter condition suffixes.
ABLATIONS = ("attractive_only", "repulsive_only")

PerEpisode = Sequence[float]


def _conditions(values: Mapping[str, PerEpisode], needed: Sequence[str], what: str) -> None:
    missing = [c for c in needed if c not in values]
    if missing:
        raise ValueError(f"{what} lacks the conditions {missing}; it has {sorted(values)}")


def _mean(values: PerEpisode) -> float:
    return sum(values) / len(values)


def _fmt(effect: Interval) -> str:
    return f"{effect.value:+.1f} [{effect.low:+.1f}, {effect.high:+.1f}]"


def _trend(
    by_rate: Mapping[float, PerEpisode], shots: int, *, rising: bool, seed: int
) -> tuple[list[Criterion], str]:
    """One criterion per step between consecutive poison rates; rate 0 is the control."""
    rates = sorted(by_rate)
    if len(rates) < 2 or rates[0] != 0:
        raise ValueError(
            f"need the control (poison rate 0) and at least one poison rate, got {rates}"
        )
    name = "ASR" if rising else "accuracy"
    criteria = []
    for low, high in zip(rates, rates[1:]):
        a, b = (by_rate[high], by_rate[low]) if rising else (by_rate[low], by_rate[high])
        measure = (
            f"{shots}-shot ASR at poison rate {high:g} minus at {low:g} (points)"
            if rising
            else f"{shots}-shot accuracy at poison rate {low:g} minus at {high:g} (points)"
        )
        criteria.append(Criterion(measure, paired_bootstrap(a, b, seed=seed), TREND_STEP))
    levels = ", ".join(f"{_mean(by_rate[r]):.1f} % (rate {r:g})" for r in rates)
    steps = ", ".join(_fmt(c.effect) for c in criteria)
    word = "rises" if rising else "drops"
    ours = (
        f"{shots}-shot {name}: {levels}; step {word} {steps} points; "
        f"{criteria[0].effect.n} episodes"
    )
    return criteria, ours


def badnets_asr_rises(asr_by_rate: Mapping[float, PerEpisode], shots: int, *, seed: int) -> Claim:
    """BadNets' ASR rises with the poison rate, in the ``shots``-shot setting.

    Args:
        asr_by_rate: poison rate -> per-episode ASR (%) under the white square; rate 0 is the
            control, the clean head's ASR under the same square on the same episodes.
        shots: the shot setting (for the claim's id and wording).
        seed: the bootstrap's seed (the chapter's).

    Each step up between consecutive rates must raise the ASR by at least :data:`TREND_STEP`
    points (paired over episodes). A BadNets that simply fails does not pass.
    """
    criteria, ours = _trend(asr_by_rate, shots, rising=True, seed=seed)
    return make_claim(
        f"badnets-asr-rises-{shots}-shot",
        f"BadNets-style dirty-label support poisoning ({shots}-shot): the ASR rises with the "
        "poison rate.",
        criteria,
        rule=f"each step up in the poison rate (0: clean support): paired ASR difference ≥ "
        f"{TREND_STEP:g} points, whole 95 % interval",
        ours=ours,
        paper=_BADNETS_PAPER,
        source="[abs]",
    )


def badnets_accuracy_falls(
    accuracy_by_rate: Mapping[float, PerEpisode], shots: int, *, seed: int
) -> Claim:
    """BadNets' clean accuracy falls as the poison rate rises, in the ``shots``-shot setting.

    Args:
        accuracy_by_rate: poison rate -> per-episode clean accuracy (%); rate 0 is clean
            fine-tuning on the same episodes.
        shots, seed: as for :func:`badnets_asr_rises`.

    Each step up between consecutive rates must lower the accuracy by at least
    :data:`TREND_STEP` points (paired over episodes).
    """
    criteria, ours = _trend(accuracy_by_rate, shots, rising=False, seed=seed)
    return make_claim(
        f"badnets-accuracy-falls-{shots}-shot",
        f"BadNets-style dirty-label support poisoning ({shots}-shot): clean accuracy falls as "
        "the poison rate rises.",
        criteria,
        rule=f"each step up in the poison rate (0: clean support): paired accuracy drop ≥ "
        f"{TREND_STEP:g} points, whole 95 % interval",
        ours=ours,
        paper=_BADNETS_PAPER,
        source="[abs]",
    )


def flba_high_asr_stealthy(
    asr: Mapping[int, Mapping[str, PerEpisode]],
    accuracy: Mapping[int, Mapping[str, PerEpisode]],
    *,
    seed: int,
) -> Claim:
    """FLBA reaches a high ASR while clean accuracy stays within a few points of clean
    fine-tuning, in every shot setting.

    Args:
        asr, accuracy: shots -> condition -> per-episode rate (%); the conditions ``flba`` and
            ``clean`` (the clean head, its ASR under the FLBA patch) are needed.
        seed: the bootstrap's seed.

    Per shot setting, two paired criteria: ASR(flba) - ASR(clean) ≥ :data:`ASR_LIFT` and
    accuracy(flba) - accuracy(clean) ≥ -:data:`ACC_TOLERANCE`.
    """
    criteria, parts = [], []
    for k in sorted(asr):
        _conditions(asr[k], ("flba", "clean"), f"asr[{k}]")
        _conditions(accuracy[k], ("flba", "clean"), f"accuracy[{k}]")
        lift = paired_bootstrap(asr[k]["flba"], asr[k]["clean"], seed=seed)
        change = paired_bootstrap(accuracy[k]["flba"], accuracy[k]["clean"], seed=seed)
        criteria += [
            Criterion(f"{k}-shot ASR of FLBA minus the clean head's (points)", lift, ASR_LIFT),
            Criterion(
                f"{k}-shot accuracy of FLBA minus clean fine-tuning's (points)",
                change,
                -ACC_TOLERANCE,
            ),
        ]
        parts.append(
            f"{k}-shot: ASR {_mean(asr[k]['flba']):.1f} % vs clean head "
            f"{_mean(asr[k]['clean']):.1f} %, lift {_fmt(lift)} points; accuracy "
            f"{_mean(accuracy[k]['flba']):.1f} % vs {_mean(accuracy[k]['clean']):.1f} %, change "
            f"{_fmt(change)} points ({lift.n} episodes)"
        )
    return make_claim(
        "flba-high-asr-stealthy",
        "FLBA reaches a high ASR while clean accuracy stays within a few points of clean "
        "fine-tuning.",
        criteria,
        rule=f"in every shot setting, paired over episodes: ASR(FLBA) − ASR(clean head, same "
        f"patch) ≥ {ASR_LIFT:g} points and accuracy(FLBA) − accuracy(clean) ≥ "
        f"−{ACC_TOLERANCE:g} points, whole 95 % intervals",
        ours="; ".join(parts),
        paper="FLBA succeeds in few-shot fine-tuning while staying stealthy (tables not "
        "available to us)",
        source="[abs]",
    )


def both_perturbations_contribute(
    asr: Mapping[int, Mapping[str, PerEpisode]], *, seed: int
) -> Claim:
    """Each ablation of FLBA (attractive only, repulsive only) is weaker than the full attack,
    in every shot setting.

    Args:
        asr: shots -> condition -> per-episode ASR (%) under the FLBA patch; the conditions
            ``flba`` and ``flba_<ablation>`` for each of :data:`ABLATIONS` are needed.
        seed: the bootstrap's seed.

    Per shot setting and ablation: ASR(flba) - ASR(ablation) ≥ :data:`ABLATION_GAP` (paired).
    """
    criteria, parts = [], []
    for k in sorted(asr):
        _conditions(asr[k], ("flba", *(f"flba_{a}" for a in ABLATIONS)), f"asr[{k}]")
        for a in ABLATIONS:
            gap = paired_bootstrap(asr[k]["flba"], asr[k][f"flba_{a}"], seed=seed)
            name = a.replace("_", " ")
            criteria.append(
                Criterion(f"{k}-shot ASR of full FLBA minus {name} (points)", gap, ABLATION_GAP)
            )
            parts.append(
                f"{k}-shot {name}: {_mean(asr[k][f'flba_{a}']):.1f} % (full "
                f"{_mean(asr[k]['flba']):.1f} %), gap {_fmt(gap)} points"
            )
    return make_claim(
        "both-perturbations-contribute",
        "Both perturbation types contribute: each ablation (attractive only, repulsive only) "
        "is weaker than full FLBA.",
        criteria,
        rule=f"in every shot setting, for both ablations, paired over episodes: ASR(full) − "
        f"ASR(ablation) ≥ {ABLATION_GAP:g} points, whole 95 % interval",
        ours="; ".join(parts) + f"; {criteria[0].effect.n} episodes each",
        paper="the attractive and repulsive perturbations are both needed (ablation in the "
        "paper; numbers not available)",
        source="[?]",
    )
