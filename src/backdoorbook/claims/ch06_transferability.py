"""Chapter 6's claims: trends of transferability that the survey of Gu et al. reports.

Gu et al., "A Survey on Transferability of Adversarial Examples across Deep Neural Networks"
(TMLR 2024, arXiv:2310.17626). The survey states these as trends and reports no CIFAR-10
numbers, so no claim carries a paper figure.

Every effect is a difference between two arms run on the *same* attacked images: per image, an
arm's outcome is the share (percent) of its black-box (surrogate, target) pairs that the image's
adversarial version fools (see :func:`backdoorbook.attacks.transfer.per_image_success`). The
difference of the two arms' means gets a paired bootstrap interval over the images, seeded by
the chapter's seed. The clean control is zero by construction: every attacked image is one that
every model classifies correctly, so a success is never a clean error.

Each claim must hold at every budget ε the run attacks with, so it has one criterion per ε (and
per compared arm).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .core import Claim, Criterion, make_claim
from .intervals import paired_bootstrap

#: Points by which one arm's mean black-box success must exceed another's to "transfer better";
#: the chapter's threshold since its first version, fixed before any number was seen.
MARGIN = 1.0

#: ε (in 1/255) -> per-image success (%) of one arm, one value per attacked image.
Outcomes = Mapping[int, np.ndarray]


def _checked(arms: Mapping[str, Outcomes]) -> dict[str, dict[int, np.ndarray]]:
    """The arms as arrays, after checking that they share their budgets and their images."""
    if not arms:
        raise ValueError("need at least one arm")
    arrays = {
        name: {int(e): np.asarray(v, dtype=float) for e, v in outcomes.items()}
        for name, outcomes in arms.items()
    }
    budgets = {name: sorted(outcomes) for name, outcomes in arrays.items()}
    first = next(iter(budgets.values()))
    if not first or any(b != first for b in budgets.values()):
        raise ValueError(f"every arm needs outcomes at the same budgets, got {budgets}")
    shapes = {v.shape for outcomes in arrays.values() for v in outcomes.values()}
    if len(shapes) != 1 or len(next(iter(shapes))) != 1:
        raise ValueError(f"every arm needs one value per attacked image, got shapes {shapes}")
    for outcomes in arrays.values():
        for v in outcomes.values():
            if v.min() < 0 or v.max() > 100:
                raise ValueError("per-image success must lie in [0, 100] (percent)")
    return arrays


def _compare(
    arrays: Mapping[str, Mapping[int, np.ndarray]],
    pairs: Sequence[tuple[str, str]],
    where: str,
    seed: int,
) -> tuple[list[Criterion], str]:
    """One criterion per (better, worse) pair and ε: mean(better) − mean(worse) ≥ :data:`MARGIN`,
    paired over the images; and the text of our figures (effects, intervals, means, n)."""
    budgets = sorted(next(iter(arrays.values())))
    criteria, parts = [], []
    for better, worse in pairs:
        for e in budgets:
            effect = paired_bootstrap(arrays[better][e], arrays[worse][e], seed=seed)
            criteria.append(
                Criterion(
                    f"{better} − {worse}, mean success {where} at ε = {e}/255 (points)",
                    effect,
                    MARGIN,
                )
            )
            parts.append(
                f"{better} − {worse} at {e}/255: {effect.value:+.1f} "
                f"[{effect.low:+.1f}, {effect.high:+.1f}]"
            )
    means = "; ".join(
        f"{name} " + ", ".join(f"{by_eps[e].mean():.1f} %" for e in budgets)
        for name, by_eps in arrays.items()
    )
    n = criteria[0].effect.n
    eps = ", ".join(f"{e}/255" for e in budgets)
    return criteria, f"{'; '.join(parts)} points (means at {eps}: {means}; n = {n} images)"


def _budgets(arrays: Mapping[str, Mapping[int, np.ndarray]]) -> str:
    return ", ".join(f"{e}/255" for e in sorted(next(iter(arrays.values()))))


def momentum_beats_iterative(mifgsm: Outcomes, ifgsm: Outcomes, *, seed: int) -> Claim:
    """The rule for "I-FGSM transfers worse than MI-FGSM" (Dong et al., CVPR 2018,
    arXiv:1710.06081): MI-FGSM − I-FGSM ≥ :data:`MARGIN` points at every ε, on all black-box
    pairs of the single surrogates."""
    arrays = _checked({"MI-FGSM": mifgsm, "I-FGSM": ifgsm})
    criteria, ours = _compare(arrays, [("MI-FGSM", "I-FGSM")], "over black-box pairs", seed)
    return make_claim(
        "ifgsm-below-mifgsm",
        "I-FGSM transfers worse than MI-FGSM on average over black-box targets.",
        criteria,
        rule=f"mean black-box success, paired over the attacked images: MI-FGSM − I-FGSM ≥ "
        f"{MARGIN} points at every ε ({_budgets(arrays)}), the whole 95 % interval deciding",
        ours=ours,
    )


def input_transforms_add_to_momentum(
    transformed: Mapping[str, Outcomes], mifgsm: Outcomes, *, seed: int
) -> Claim:
    """The rule for "each input transformation added to momentum raises black-box success over
    MI-FGSM" (DI, TI, SI, Admix, the survey's input-augmentation family): for every
    transformation and every ε, its mean black-box success − MI-FGSM's ≥ :data:`MARGIN` points."""
    if not transformed or "MI-FGSM" in transformed:
        raise ValueError("need at least one transformed method, and MI-FGSM only as the baseline")
    arrays = _checked({**transformed, "MI-FGSM": mifgsm})
    pairs = [(name, "MI-FGSM") for name in transformed]
    criteria, ours = _compare(arrays, pairs, "over black-box pairs", seed)
    return make_claim(
        "input-transforms-add-to-mi",
        "Each input transformation (DI, TI, SI, Admix) added to momentum raises average "
        "black-box success over MI-FGSM.",
        criteria,
        rule=f"for each of {', '.join(transformed)}: mean black-box success − MI-FGSM's ≥ "
        f"{MARGIN} points at every ε ({_budgets(arrays)}), paired over the attacked images; "
        "every difference's whole 95 % interval deciding",
        ours=ours,
    )


def within_family_transfer(
    within: Outcomes, across: Outcomes, *, families: Sequence[str], seed: int
) -> Claim:
    """The rule for "transfer within an architecture family is higher than across families":
    mean success of the single-surrogate attacks from ResNets on the other ResNets − on the
    ``families`` (the other architectures) ≥ :data:`MARGIN` points at every ε, paired over the
    images."""
    arrays = _checked({"ResNet → ResNet": within, "ResNet → other families": across})
    pairs = [("ResNet → ResNet", "ResNet → other families")]
    criteria, ours = _compare(arrays, pairs, "of the single-surrogate attacks", seed)
    return make_claim(
        "within-family-transfer",
        "Transfer within the ResNet family is higher than to the other architectures.",
        criteria,
        rule=f"mean success ResNet → other ResNets − ResNet → {'/'.join(families)} ≥ {MARGIN} "
        f"points at every ε ({_budgets(arrays)}), all single-surrogate methods pooled, paired "
        "over the attacked images",
        ours=ours,
    )


def ensemble_transfers_best(
    ensemble: Outcomes, members: Mapping[str, Outcomes], *, targets: Sequence[str], seed: int
) -> Claim:
    """The rule for "the ensemble surrogate transfers best" (Liu et al., ICLR 2017,
    arXiv:1611.02770): on ``targets`` that no surrogate contains, Ens-MI − MI-FGSM from each
    member surrogate alone ≥ :data:`MARGIN` points at every ε, paired over the images."""
    if not members or "Ens-MI" in members:
        raise ValueError("need MI-FGSM outcomes from at least one member surrogate")
    arms = {"Ens-MI": ensemble, **{f"MI-FGSM from {m}": v for m, v in members.items()}}
    arrays = _checked(arms)
    pairs = [("Ens-MI", name) for name in arms if name != "Ens-MI"]
    criteria, ours = _compare(arrays, pairs, "on the held-out targets", seed)
    return make_claim(
        "ensemble-transfers-best",
        "The ensemble surrogate transfers best.",
        criteria,
        rule=f"on the held-out targets ({', '.join(targets)}): Ens-MI − MI-FGSM from each "
        f"member surrogate alone ({', '.join(members)}) ≥ {MARGIN} points at every ε "
        f"({_budgets(arrays)}), paired over the attacked images",
        ours=ours,
    )
