"""Chapter 4's claims: backdoors in CLIP-style models and three defenses that fine-tune them.

The papers: Carlini & Terzis, "Poisoning and Backdooring Contrastive Learning" (ICLR 2022,
arXiv:2106.09667); Liang et al., "BadCLIP: Dual-Embedding Guided Backdoor Attack on Multimodal
Contrastive Learning" (CVPR 2024, arXiv:2311.12075); Bansal et al., "CleanCLIP: Mitigating Data
Poisoning Attacks in Multimodal Contrastive Learning" (ICCV 2023, arXiv:2303.03323); Xun et al.,
"TA-Cleaner: A Fine-grained Text Alignment Backdoor Defense Strategy for Multimodal Contrastive
Learning" (arXiv:2409.17601); Liang et al., "Unlearning Backdoor Threats: Enhancing Backdoor
Defense in Multimodal Contrastive Learning via Local Token Unlearning" (arXiv:2403.16257).

Every rule takes per-image outcomes (:data:`Outcomes`, one value per image in percent: 100 for a
hit, 0 for a miss; bool arrays are read as such), and compares two models on the *same* images:
a paired bootstrap over images (:func:`~.intervals.paired_bootstrap`, seeded by the chapter's
seed) gives each difference its 95 % interval. ASR is measured against the clean control model
on the same triggered images, so a trigger that fools the clean model by itself (the optimised
BadCLIP patch is built to) earns no credit; CA changes are relative to the clean control, or to
the compared defense on the same clean images.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np

from .core import Claim, Criterion, make_claim
from .intervals import Interval, paired_bootstrap

#: Claim 1: a poisoned model's top-1 ASR must exceed the clean control's on the same triggered
#: images by at least this many points ("high ASR"; the chapter's bar since its first version,
#: which applied it to the absolute ASR).
HIGH_ASR = 50.0
#: Claim 1: ... with its CA at most this many points below the clean control's ("little loss").
CA_LOSS = 3.0
#: Claim 1: ... for at least this many of the attacks (four of the five the chapter runs).
MIN_ATTACKS = 4
#: Claim 2: CleanCLIP's mean top-1 ASR drop on the simple triggers must exceed its drop on the
#: optimised patch by at least this many points ("much more").
MUCH_MORE = 20.0
#: Claims 3 and 4: a defense's ASR must be at least this many points below CleanCLIP's.
BELOW = 5.0
#: Claim 3: TA-Cleaner's CA must lie within this many points of CleanCLIP's ("similar CA").
SIMILAR_CA = 2.0
#: Claim 4's non-inferiority margin: "CA at least as high" holds when the whole interval of UBT's
#: CA minus CleanCLIP's lies above minus this many points. The interval carries the sampling
#: noise (a bare slack of 0.5 points did, and was smaller than the CA's standard error); the
#: margin is the loss of CA still read as "as high": one point, a third of claim 1's "little
#: loss" (:data:`CA_LOSS`) and under half of the 2.57-point CA gain UBT reports over the best
#: earlier defense (its abstract), so a loss as large as the differences the paper reports is
#: never read as "as high".
CA_MARGIN = 1.0
#: The attack whose trigger is optimised against the clean model.
PATCH = "badclip"

#: One model's per-image outcomes on one attack's test images: ``"CA"`` per clean image,
#: ``"ASR@1"`` and ``"ASR@10"`` per triggered non-target image; values in percent (0 or 100).
Outcomes = Mapping[str, np.ndarray]
_RANK = {"reproduced": 2, "inconclusive": 1, "not reproduced": 0}


def percent(values) -> np.ndarray:
    """Per-image outcomes as a float array in percent: bool arrays become 0 / 100; other values
    must already lie in [0, 100]."""
    array = np.asarray(values)
    if array.ndim != 1 or len(array) < 2:
        raise ValueError(f"need one outcome per image (1-D, at least 2), got shape {array.shape}")
    if array.dtype == bool:
        return 100.0 * array
    array = array.astype(float)
    if not np.isfinite(array).all() or array.min() < 0 or array.max() > 100:
        raise ValueError("per-image outcomes must lie in [0, 100] (percent)")
    return array


def _metric(outcomes: Mapping[str, Outcomes], metric: str) -> dict[str, np.ndarray]:
    """``attack -> outcomes[attack][metric]`` in percent, checking every attack has one length."""
    arrays = {a: percent(o[metric]) for a, o in outcomes.items()}
    if len({len(v) for v in arrays.values()}) != 1:
        raise ValueError(f"every attack needs {metric} outcomes on the same images")
    return arrays


def _paired(a: np.ndarray, b: np.ndarray, what: str, seed: int) -> Interval:
    if a.shape != b.shape:
        raise ValueError(f"{what}: the two arms need outcomes on the same images")
    return paired_bootstrap(a, b, seed=seed)


def _show(effect: Interval) -> str:
    return f"{effect.value:+.1f} [{effect.low:+.1f}, {effect.high:+.1f}]"


def _margin(claim: Claim) -> float:
    """The headline criterion's margin (see :attr:`Criterion.margin`)."""
    effect = Interval(claim.effect, claim.ci_low, claim.ci_high, claim.n)
    return Criterion(claim.measure, effect, claim.threshold, claim.direction).margin


def at_least_k_of(id: str, groups: Mapping[str, Claim], k: int, **fields) -> Claim:
    """A claim that holds when at least ``k`` of ``groups`` (one claim each, e.g. per attack)
    are reproduced: reproduced when ``k`` are, not reproduced when fewer than ``k`` are
    reproduced or inconclusive, inconclusive otherwise. Its headline is the group ranked
    ``k``-th (by verdict, then by margin), whose verdict is the claim's; ``fields`` are the
    :class:`Claim`'s texts (statement, rule, ours, paper, source, note)."""
    if not 1 <= k <= len(groups):
        raise ValueError(f"need 1 <= k <= {len(groups)} groups, got k = {k}")
    ordered = sorted(groups.values(), key=lambda c: (_RANK[c.verdict], _margin(c)), reverse=True)
    criteria = [
        {**criterion, "group": name} for name, c in groups.items() for criterion in c.criteria
    ]
    return replace(ordered[k - 1], id=id, criteria=criteria, **fields)


def poisoning_high_asr_low_ca_loss(
    poisoned: Mapping[str, Outcomes],
    control: Mapping[str, Outcomes],
    *,
    poisoned_pairs: int,
    training_pairs: int,
    seed: int,
) -> Claim:
    """The rule for "poisoned pre-training with a small fraction of pairs gives a high ASR with
    little loss of CA" (Carlini & Terzis; BadCLIP): for at least :data:`MIN_ATTACKS` attacks,
    top-1 ASR of the poisoned model − the clean control's on the same triggered images ≥
    :data:`HIGH_ASR` points, and its CA − the control's on the same clean images ≥
    −:data:`CA_LOSS` points.

    ``poisoned[attack]`` are the outcomes of the model poisoned with ``attack``,
    ``control[attack]`` the clean control's on that attack's triggered images.
    """
    if set(poisoned) != set(control) or len(poisoned) < MIN_ATTACKS:
        raise ValueError(
            f"need the same attacks (at least {MIN_ATTACKS}) for the poisoned models and the "
            f"control, got {sorted(poisoned)} and {sorted(control)}"
        )
    asr, asr0 = _metric(poisoned, "ASR@1"), _metric(control, "ASR@1")
    ca, ca0 = _metric(poisoned, "CA"), _metric(control, "CA")
    groups, parts = {}, []
    for a in poisoned:
        excess = _paired(asr[a], asr0[a], f"{a} ASR", seed)
        loss = _paired(ca[a], ca0[a], f"{a} CA", seed)
        groups[a] = make_claim(
            a,
            a,
            [
                Criterion(f"{a}: top-1 ASR − clean control's (points)", excess, HIGH_ASR),
                Criterion(f"{a}: CA − clean control's (points)", loss, -CA_LOSS),
            ],
            rule="",
            ours="",
        )
        parts.append(
            f"{a}: ASR {asr[a].mean():.1f} % (control {asr0[a].mean():.1f} %), excess "
            f"{_show(excess)}; CA {ca[a].mean():.1f} % (control {ca0[a].mean():.1f} %), "
            f"change {_show(loss)}"
        )
    met = [a for a, c in groups.items() if c.verdict == "reproduced"]
    n_triggered, n_clean = len(next(iter(asr.values()))), len(next(iter(ca.values())))
    return at_least_k_of(
        "poisoning-high-asr-low-ca-loss",
        groups,
        MIN_ATTACKS,
        statement="Poisoned pre-training with a small fraction of pairs gives a high ASR with "
        "little loss of CA.",
        rule=f"for at least {MIN_ATTACKS} of {len(groups)} attacks, paired over the same images: "
        f"top-1 ASR − the clean control's ≥ {HIGH_ASR:g} points and CA − the clean control's ≥ "
        f"−{CA_LOSS:g} points ({poisoned_pairs} of {training_pairs} continued-training pairs "
        "poisoned), each whole 95 % interval deciding",
        ours="; ".join(parts) + f" (points; n = {n_triggered} triggered, {n_clean} clean images); "
        f"both criteria reproduced for {len(met)} attacks ({', '.join(met) or 'none'})",
        paper="BadNet 82.7 %, Blended 98.5 %, BadCLIP near 100 % top-1 ASR (ViT-B/32, CC3M)",
        source="[3p]",
    )


def _mean_drop(
    no_defense: Mapping[str, np.ndarray], defended: Mapping[str, np.ndarray], attacks: Sequence
) -> np.ndarray:
    """Per triggered image, the mean over ``attacks`` of (ASR without defense − after it)."""
    return np.mean([no_defense[a] - defended[a] for a in attacks], axis=0)


def cleanclip_simple_vs_patch(
    no_defense: Mapping[str, Outcomes],
    cleanclip: Mapping[str, Outcomes],
    control: Mapping[str, Outcomes],
    *,
    seed: int,
    patch: str = PATCH,
) -> Claim:
    """The rule for "CleanCLIP lowers the ASR of simple triggers much more than that of the
    optimised patch" (BadCLIP's evaluation of CleanCLIP): per triggered image, the mean over the
    simple triggers of CleanCLIP's top-1 ASR drop (no defense − CleanCLIP) − its drop on
    ``patch`` ≥ :data:`MUCH_MORE` points, paired over the images (the test images are the same
    under every trigger).

    The note gives the same comparison restricted to the simple triggers that were implanted
    (top-1 ASR at least :data:`HIGH_ASR` / 2 points above the clean ``control``'s); it is not
    part of the rule.
    """
    if patch not in no_defense or not set(no_defense) == set(cleanclip) == set(control):
        raise ValueError(f"need the same attacks, {patch!r} among them, for every model")
    simple = [a for a in no_defense if a != patch]
    if not simple:
        raise ValueError("need at least one simple trigger besides the patch")
    before, after = _metric(no_defense, "ASR@1"), _metric(cleanclip, "ASR@1")
    base = _metric(control, "ASR@1")
    patch_drop = before[patch] - after[patch]
    effect = _paired(_mean_drop(before, after, simple), patch_drop, "ASR drops", seed)
    implanted = [a for a in simple if (before[a] - base[a]).mean() >= HIGH_ASR / 2]
    note = f"no simple trigger's top-1 ASR exceeds the clean control's by {HIGH_ASR / 2:g} points"
    if implanted:
        restricted = _paired(_mean_drop(before, after, implanted), patch_drop, "drops", seed)
        note = (
            f"over the simple triggers whose top-1 ASR exceeds the clean control's by at least "
            f"{HIGH_ASR / 2:g} points ({', '.join(implanted)}), the mean drop − the patch's is "
            f"{_show(restricted)} points (not part of the rule)"
        )
    drops = ", ".join(f"{a} {(before[a] - after[a]).mean():+.1f}" for a in simple)
    return make_claim(
        "cleanclip-simple-vs-patch",
        "CleanCLIP lowers the ASR of simple triggers much more than that of the optimised patch.",
        Criterion(
            f"mean top-1 ASR drop under CleanCLIP over {', '.join(simple)} − drop on {patch} "
            "(points)",
            effect,
            MUCH_MORE,
        ),
        rule=f"paired over the triggered images: mean top-1 ASR drop (no defense − CleanCLIP) "
        f"over {', '.join(simple)} − the drop on {patch} ≥ {MUCH_MORE:g} points, the whole 95 % "
        "interval deciding",
        ours=f"difference {_show(effect)} points; drops {drops}, {patch} "
        f"{patch_drop.mean():+.1f} points (n = {effect.n} triggered images)",
        paper="BadNet 82.7 → 23.8, Blended 98.5 → 0.25, BadCLIP stays at 89.7 % (ViT-B/32)",
        source="[3p]",
        note=note,
    )


def ta_cleaner_beats_cleanclip(ta_cleaner: Outcomes, cleanclip: Outcomes, *, seed: int) -> Claim:
    """The rule for "TA-Cleaner lowers top-1 and top-10 ASR below CleanCLIP on the optimised
    patch at similar CA" (TA-Cleaner's abstract): on the patch attack, TA-Cleaner − CleanCLIP
    ≤ −:data:`BELOW` points in top-1 and in top-10 ASR (paired over the triggered images) and
    within ±:data:`SIMILAR_CA` points in CA (paired over the clean images)."""
    ta = {m: percent(ta_cleaner[m]) for m in ("ASR@1", "ASR@10", "CA")}
    cc = {m: percent(cleanclip[m]) for m in ("ASR@1", "ASR@10", "CA")}
    d = {m: _paired(ta[m], cc[m], m, seed) for m in ta}
    return make_claim(
        "ta-cleaner-beats-cleanclip-on-badclip",
        "TA-Cleaner lowers top-1 and top-10 ASR below CleanCLIP on the optimised patch at "
        "similar CA.",
        [
            Criterion("top-1 ASR, TA-Cleaner − CleanCLIP (points)", d["ASR@1"], -BELOW, "at most"),
            Criterion(
                "top-10 ASR, TA-Cleaner − CleanCLIP (points)", d["ASR@10"], -BELOW, "at most"
            ),
            Criterion("CA, TA-Cleaner − CleanCLIP (points)", d["CA"], -SIMILAR_CA, "at least"),
            Criterion("CA, TA-Cleaner − CleanCLIP (points)", d["CA"], SIMILAR_CA, "at most"),
        ],
        rule=f"on {PATCH}, paired over the same images: TA-Cleaner − CleanCLIP ≤ −{BELOW:g} "
        f"points in top-1 and in top-10 ASR, and between −{SIMILAR_CA:g} and +{SIMILAR_CA:g} "
        "points in CA, each whole 95 % interval deciding",
        ours=f"top-1 ASR {ta['ASR@1'].mean():.1f} vs {cc['ASR@1'].mean():.1f} % "
        f"({_show(d['ASR@1'])}), top-10 ASR {ta['ASR@10'].mean():.1f} vs "
        f"{cc['ASR@10'].mean():.1f} % ({_show(d['ASR@10'])}), CA {ta['CA'].mean():.1f} vs "
        f"{cc['CA'].mean():.1f} % ({_show(d['CA'])}) (TA-Cleaner vs CleanCLIP, points; n = "
        f"{d['ASR@1'].n} triggered, {d['CA'].n} clean images)",
        paper="−52.02 top-1 / −63.88 top-10 ASR points vs CleanCLIP on BadCLIP",
        source="[abs]",
    )


def ubt_beats_cleanclip(
    ubt: Mapping[str, Outcomes], cleanclip: Mapping[str, Outcomes], *, seed: int
) -> Claim:
    """The rule for "UBT lowers ASR below CleanCLIP with CA at least as high" (UBT's abstract):
    averaged over the attacks, per image, UBT's top-1 ASR − CleanCLIP's ≤ −:data:`BELOW` points
    (paired over the triggered images) and UBT's CA − CleanCLIP's ≥ −:data:`CA_MARGIN` points
    (non-inferiority, paired over the clean images)."""
    if set(ubt) != set(cleanclip) or not ubt:
        raise ValueError("need outcomes of UBT and CleanCLIP on the same attacks")
    attacks = list(ubt)
    asr = [_metric(m, "ASR@1") for m in (ubt, cleanclip)]
    ca = [_metric(m, "CA") for m in (ubt, cleanclip)]
    asr_u, asr_c = (np.mean([arm[a] for a in attacks], axis=0) for arm in asr)
    ca_u, ca_c = (np.mean([arm[a] for a in attacks], axis=0) for arm in ca)
    d_asr, d_ca = _paired(asr_u, asr_c, "ASR", seed), _paired(ca_u, ca_c, "CA", seed)
    return make_claim(
        "ubt-beats-cleanclip",
        "UBT lowers ASR below CleanCLIP with CA at least as high.",
        [
            Criterion(
                f"mean top-1 ASR over the {len(attacks)} attacks, UBT − CleanCLIP (points)",
                d_asr,
                -BELOW,
                "at most",
            ),
            Criterion(
                f"mean CA over the {len(attacks)} attacks, UBT − CleanCLIP (points)",
                d_ca,
                -CA_MARGIN,
                "at least",
            ),
        ],
        rule=f"means over the {len(attacks)} attacks, paired over the same images: UBT − "
        f"CleanCLIP ≤ −{BELOW:g} points in top-1 ASR, and ≥ −{CA_MARGIN:g} points in CA (a "
        "non-inferiority margin), each whole 95 % interval deciding",
        ours=f"mean top-1 ASR {asr_u.mean():.1f} vs {asr_c.mean():.1f} % ({_show(d_asr)}), mean "
        f"CA {ca_u.mean():.1f} vs {ca_c.mean():.1f} % ({_show(d_ca)}) (UBT vs CleanCLIP, points; "
        f"n = {d_asr.n} triggered, {d_ca.n} clean images)",
        paper="ASR −19 %, CA +2.57 % vs the best previous defense",
        source="[abs]",
    )
