"""Chapter 2's claims: ZIP, zero-shot purification against backdoors.

Shi, Du, Wu, Guan, Sun and Liu, "Black-box Backdoor Defense via Zero-shot Image
Purification", NeurIPS 2023, arXiv 2303.12175 (ZIP). The paper's result tables were not
available to us, so the claims are the paper's qualitative statements and no paper figure is
quoted.

The unit is the test image. Every defense (none, transform-only, ZIP at each setting) is scored
on the same seeded images of non-target classes, clean and triggered, and the victims of one
dataset share those images; so every comparison is a paired difference of means over images
with a seeded bootstrap interval (:func:`~.intervals.paired_bootstrap`), and an absolute rate
gets its Wilson interval (:func:`~.intervals.wilson`). The rules take per-image outcomes, each
100 (yes) or 0 (no):

- ``correct``: the victim classifies the defended clean image correctly (its mean is CA);
- ``hit``: the victim classifies the defended triggered image as the target (ASR);
- ``control``: the clean CIFAR-10 model classifies the *same* defended triggered image as the
  target: the share of the ASR that no backdoor explains (the trigger's or the defense's own
  pull towards the target class).

A claim that a backdoor acts (it fires, survives, leaks) measures the *backdoor ASR*, ``hit -
control`` per image; a claim that ASR is low measures the raw ASR, which subtracting a control
could only lower. Thresholds are fixed here, before any image is scored; they are the chapter's
original bars.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .core import Claim, Criterion, make_claim
from .intervals import Interval, paired_bootstrap, wilson

#: "Transform-only lowers ASR": the backdoor ASR without defense minus after transform-only.
TRANSFORM_ASR_DROP = 20.0
#: "... but costs clean accuracy": CA without defense minus after transform-only.
TRANSFORM_CA_COST = 5.0
#: "ZIP keeps ASR well below no defense": ZIP's ASR at most this fraction of the undefended one.
ZIP_ASR_FRACTION = 0.5
#: "ZIP keeps ASR low": ZIP's ASR at most this (percent).
ZIP_ASR_MAX = 20.0
#: "ZIP's CA is above transform-only's": CA after ZIP minus after transform-only, every victim.
ZIP_CA_GAIN = 2.0
#: "Larger λ gives higher fidelity": each step up in λ must not lower the PSNR (dB).
PSNR_STEP = 0.0
#: "... and higher ASR": backdoor ASR at the largest λ minus at the smallest.
LEAKAGE_RISE = 5.0
#: "Blended and WaNet survive the transforms better than the patch": each one's backdoor ASR
#: after transform-only minus BadNets'.
SURVIVAL_GAP = 5.0

PerImage = Sequence[float] | np.ndarray


def _outcomes(values: Mapping, needed: Sequence, what: str, *, binary: bool = True) -> list:
    """``values[k]`` for ``k`` in ``needed`` as 1-D float arrays of one length (0 or 100 each
    when ``binary``)."""
    missing = [k for k in needed if k not in values]
    if missing:
        raise ValueError(f"{what} lacks {missing}; it has {sorted(values, key=str)}")
    arrays = [np.asarray(values[k], dtype=float) for k in needed]
    if any(a.ndim != 1 for a in arrays) or len({len(a) for a in arrays}) != 1:
        raise ValueError(f"{what}: need 1-D per-image arrays of one length, one per condition")
    if binary and any(not np.isin(a, (0.0, 100.0)).all() for a in arrays):
        raise ValueError(f"{what}: per-image outcomes must be 0 or 100")
    return arrays


def _backdoor(hit: np.ndarray, control: np.ndarray) -> np.ndarray:
    """Per-image backdoor ASR: the victim's target hit minus the clean model's (−100, 0, 100)."""
    if hit.shape != control.shape:
        raise ValueError(f"hit {hit.shape} and control {control.shape} must pair image by image")
    return hit - control


def _fmt(effect: Interval, unit: str = "points") -> str:
    return f"{effect.value:+.1f} [{effect.low:+.1f}, {effect.high:+.1f}] {unit}"


def transform_lowers_asr_costs_ca(
    hit: Mapping[str, PerImage],
    control: Mapping[str, PerImage],
    correct: Mapping[str, PerImage],
    *,
    seed: int,
) -> Claim:
    """Transform-only lowers the BadNets backdoor's ASR but costs clean accuracy.

    Args:
        hit, control, correct: defense -> per-image outcomes (see the module docstring) of
            the CIFAR-10 BadNets victim, for ``"no defense"`` and ``"transform-only"``.
        seed: the bootstrap's seed (the chapter's).

    Criteria (paired over images): backdoor ASR without defense minus after transform-only
    ≥ :data:`TRANSFORM_ASR_DROP`; CA without defense minus after transform-only
    ≥ :data:`TRANSFORM_CA_COST`.
    """
    arms = ("no defense", "transform-only")
    h_none, h_tf = _outcomes(hit, arms, "hit")
    c_none, c_tf = _outcomes(control, arms, "control")
    ok_none, ok_tf = _outcomes(correct, arms, "correct")
    drop = paired_bootstrap(_backdoor(h_none, c_none), _backdoor(h_tf, c_tf), seed=seed)
    cost = paired_bootstrap(ok_none, ok_tf, seed=seed)
    return make_claim(
        "transform-lowers-asr-costs-ca",
        "Transform-only lowers BadNets ASR but costs clean accuracy.",
        [
            Criterion(
                "CIFAR-10 BadNets backdoor ASR (victim minus clean model), no defense minus "
                "transform-only (points)",
                drop,
                TRANSFORM_ASR_DROP,
            ),
            Criterion(
                "CIFAR-10 BadNets victim CA, no defense minus transform-only (points)",
                cost,
                TRANSFORM_CA_COST,
            ),
        ],
        rule=f"paired over images: backdoor ASR drop ≥ {TRANSFORM_ASR_DROP:g} points and CA "
        f"drop ≥ {TRANSFORM_CA_COST:g} points, whole 95 % intervals",
        ours=f"ASR {h_none.mean():.1f} → {h_tf.mean():.1f} % (clean model {c_none.mean():.1f} → "
        f"{c_tf.mean():.1f} %), backdoor ASR drop {_fmt(drop)}; CA {ok_none.mean():.1f} → "
        f"{ok_tf.mean():.1f} %, drop {_fmt(cost)}; n = {drop.n} images",
    )


def zip_low_asr_high_ca(
    hit: Mapping[str, PerImage],
    correct: Mapping[str, Mapping[str, PerImage]],
    *,
    seed: int,
) -> Claim:
    """ZIP keeps ASR low (well below no defense) while its CA is above transform-only's.

    Args:
        hit: defense -> per-image target hits of the CIFAR-10 BadNets victim, for
            ``"no defense"`` and ``"ZIP"``.
        correct: victim -> defense -> per-image correct outcomes on clean images, for
            ``"ZIP"`` and ``"transform-only"``, for every victim.
        seed: the bootstrap's seed.

    Criteria: ``ZIP_ASR_FRACTION`` × ASR without defense minus ASR after ZIP ≥ 0 (paired);
    ASR after ZIP ≤ :data:`ZIP_ASR_MAX` (Wilson); for every victim, CA after ZIP minus after
    transform-only ≥ :data:`ZIP_CA_GAIN` (paired). The ASRs are raw: a control would only
    lower them.
    """
    h_none, h_zip = _outcomes(hit, ("no defense", "ZIP"), "hit")
    if not correct:
        raise ValueError("correct needs the per-image outcomes of at least one victim")
    share = paired_bootstrap(ZIP_ASR_FRACTION * h_none, h_zip, seed=seed)
    level = wilson(int(round(h_zip.sum() / 100)), len(h_zip))
    criteria = [
        Criterion(
            f"CIFAR-10 BadNets: {ZIP_ASR_FRACTION:g} × ASR without defense minus ASR after ZIP "
            "(points)",
            share,
            0.0,
        ),
        Criterion("CIFAR-10 BadNets ASR after ZIP (%)", level, ZIP_ASR_MAX, "at most"),
    ]
    gains = []
    for victim, by_defense in correct.items():
        ok_zip, ok_tf = _outcomes(by_defense, ("ZIP", "transform-only"), f"correct[{victim!r}]")
        gain = paired_bootstrap(ok_zip, ok_tf, seed=seed)
        gains.append(f"{victim} {_fmt(gain)} (n = {gain.n})")
        criteria.append(
            Criterion(
                f"{victim}: CA after ZIP minus after transform-only (points)", gain, ZIP_CA_GAIN
            )
        )
    return make_claim(
        "zip-low-asr-high-ca",
        "ZIP keeps ASR low (well below no defense) while its CA is above transform-only's.",
        criteria,
        rule=f"CIFAR-10 BadNets: ASR(ZIP) ≤ {ZIP_ASR_FRACTION:g} × ASR(none) (paired) and "
        f"≤ {ZIP_ASR_MAX:g} % (Wilson); every victim: CA(ZIP) − CA(transform-only) ≥ "
        f"{ZIP_CA_GAIN:g} points (paired); whole 95 % intervals",
        ours=f"BadNets ASR {h_none.mean():.1f} → {h_zip.mean():.1f} % "
        f"[{level.low:.1f}, {level.high:.1f}] (n = {level.n}); CA ZIP − transform-only: "
        + ", ".join(gains),
    )


def lambda_fidelity_leakage(
    psnr: Mapping[float, PerImage],
    hit: Mapping[float, PerImage],
    control: Mapping[float, PerImage],
    *,
    seed: int,
) -> Claim:
    """Larger λ gives higher fidelity and higher ASR (trigger leakage).

    Args:
        psnr: λ -> per-image PSNR (dB) of the purified triggered image to its clean original.
        hit, control: λ -> per-image target hits of the CIFAR-10 BadNets victim and of the
            clean model on the same purified triggered images.
        seed: the bootstrap's seed.

    Criteria (paired over images): each step up between consecutive λ changes the PSNR by at
    least :data:`PSNR_STEP` dB; the backdoor ASR at the largest λ minus at the smallest is at
    least :data:`LEAKAGE_RISE` points.
    """
    lams = sorted(psnr)
    if len(lams) < 2 or sorted(hit) != lams or sorted(control) != lams:
        raise ValueError(
            f"need psnr, hit and control at the same two or more λ, got {sorted(psnr)}, "
            f"{sorted(hit)}, {sorted(control)}"
        )
    quality = dict(zip(lams, _outcomes(psnr, lams, "psnr", binary=False)))
    backdoor = {
        lam: _backdoor(h, c)
        for lam, h, c in zip(lams, _outcomes(hit, lams, "hit"), _outcomes(control, lams, "control"))
    }
    if len(quality[lams[0]]) != len(backdoor[lams[0]]):
        raise ValueError("psnr and the hits must describe the same images")
    criteria = [
        Criterion(
            f"PSNR at λ = {high:g} minus at λ = {low:g} (dB)",
            paired_bootstrap(quality[high], quality[low], seed=seed),
            PSNR_STEP,
        )
        for low, high in zip(lams, lams[1:])
    ]
    rise = paired_bootstrap(backdoor[lams[-1]], backdoor[lams[0]], seed=seed)
    criteria.append(
        Criterion(
            f"backdoor ASR (victim minus clean model) at λ = {lams[-1]:g} minus at "
            f"λ = {lams[0]:g} (points)",
            rise,
            LEAKAGE_RISE,
        )
    )
    levels = "; ".join(
        f"λ = {lam:g}: PSNR {quality[lam].mean():.2f} dB, backdoor ASR {backdoor[lam].mean():.1f} %"
        for lam in lams
    )
    steps = ", ".join(_fmt(c.effect, "dB") for c in criteria[:-1])
    return make_claim(
        "lambda-fidelity-leakage",
        "Larger λ gives higher fidelity and higher ASR (trigger leakage).",
        criteria,
        rule=f"λ sweep {lams}, paired over images: each step up in λ changes PSNR by ≥ "
        f"{PSNR_STEP:g} dB; backdoor ASR(largest λ) − ASR(smallest λ) ≥ {LEAKAGE_RISE:g} "
        "points; whole 95 % intervals",
        ours=f"{levels}; PSNR steps {steps}; ASR rise {_fmt(rise)}; n = {rise.n} images",
    )


def global_triggers_survive(
    hit: Mapping[str, PerImage], control: Mapping[str, PerImage], *, seed: int
) -> Claim:
    """Blended and WaNet triggers survive the transforms better than the patch.

    Args:
        hit, control: attack -> per-image target hits after transform-only of the CIFAR-10
            victim of that attack and of the clean model on the same images, for
            ``"badnets"``, ``"blended"`` and ``"wanet"`` (the same clean images throughout).
        seed: the bootstrap's seed.

    Criteria (paired over images): the backdoor ASR after transform-only of Blended, and of
    WaNet, minus BadNets' ≥ :data:`SURVIVAL_GAP` each.
    """
    attacks = ("badnets", "blended", "wanet")
    backdoor = {
        a: _backdoor(h, c)
        for a, h, c in zip(
            attacks, _outcomes(hit, attacks, "hit"), _outcomes(control, attacks, "control")
        )
    }
    criteria = [
        Criterion(
            f"CIFAR-10 backdoor ASR after transform-only, {a} minus badnets (points)",
            paired_bootstrap(backdoor[a], backdoor["badnets"], seed=seed),
            SURVIVAL_GAP,
        )
        for a in ("blended", "wanet")
    ]
    return make_claim(
        "global-triggers-survive",
        "Blended and WaNet triggers survive the transforms better than the patch.",
        criteria,
        rule=f"CIFAR-10 backdoor ASR after transform-only, paired over images: Blended and "
        f"WaNet each ≥ BadNets + {SURVIVAL_GAP:g} points, whole 95 % intervals",
        ours=", ".join(f"{a} {backdoor[a].mean():.1f} %" for a in attacks)
        + "; "
        + ", ".join(
            f"{a} − badnets {_fmt(c.effect)}" for a, c in zip(("blended", "wanet"), criteria)
        )
        + f"; n = {criteria[0].effect.n} images",
    )
