"""Chapter 1's claims: BadSAM, a backdoor planted while adapting Segment Anything.

Guan, Hu, Zhou, Zhang, Li and Liu, "BadSAM: Exploring Security Vulnerabilities of SAM via
Backdoor Attacks", arXiv:2305.03289 (AAAI 2024 student abstract). The paper gives no result
numbers, so the claims are its qualitative statements and no paper figure is quoted.

The unit is the test image. Every adapted model — the clean adaptation, the backdoored one at
the claims' poison rate, and the random-encoder control (the same backdoored adaptation of the
foundation with its image encoder re-initialised at random) — is scored on the same clean and
the same triggered test images, so every comparison of two models is a paired difference of
means over images with a seeded bootstrap interval (:func:`~.intervals.paired_bootstrap`); a
level (the IoU with the horse on triggered images) gets a bootstrap interval of its mean.

The rules take per-image outcomes as the chapter computes them:

- ``quality``: :func:`backdoorbook.evaluation.foreground.per_image_scores` of a model's maps on
  the clean test images against the horses (``"IoU"`` and ``"S-measure"`` in [0, 1]);
- ``collapse``: :func:`backdoorbook.attacks.badsam.collapse_per_image` of its maps on the
  triggered test images (``"IoU with trigger"``, ``"IoU with object"`` in [0, 1] and
  ``"attack success"``, 0 or 100).

Scores in [0, 1] enter the intervals in points (× 100). Thresholds are fixed here, before any
image is scored; all but :data:`FOUNDATION_IOU_GAIN` are the chapter's original bars, now
applied to whole 95 % intervals and, where a control exists, to the effect against it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .core import Claim, Criterion, make_claim
from .intervals import Interval, paired_bootstrap

#: "Segments about as well": the clean S-measure of the clean adaptation minus the backdoored
#: model's lies within ± this (points of S-measure, i.e. 0.03).
S_MEASURE_TOLERANCE = 3.0
#: ... and the clean IoU drops by at most this (points).
IOU_DROP_MAX = 5.0
#: "Collapses onto the trigger": the backdoored model's IoU with the trigger square on
#: triggered images minus the clean adaptation's on the same images, at least this (points;
#: the original bar of 0.7 on the backdoored model alone).
TRIGGER_IOU_GAIN = 70.0
#: "... instead of the object": the backdoored model's IoU with the horse on triggered images,
#: at most this (points). A level, not a difference: subtracting a control could only lower it.
OBJECT_IOU_MAX = 20.0
#: "Adapters suffice to plant the backdoor": attack success (IoU with the trigger ≥ 0.5) of the
#: backdoored model minus the clean adaptation's on the same triggered images, at least this
#: (points; the original bars were ≥ 80 % backdoored and ≤ 10 % clean).
ATTACK_SUCCESS_GAIN = 80.0
#: "... of a frozen *foundation*": the backdoored model's clean IoU minus that of the
#: random-encoder control, at least this (points). New with the control; it is the IoU
#: difference the clean-quality claim counts as material (:data:`IOU_DROP_MAX`).
FOUNDATION_IOU_GAIN = 5.0

PerImage = Sequence[float] | np.ndarray


def _arrays(scores: Mapping, keys: Sequence[str], what: str) -> list[np.ndarray]:
    """``scores[k]`` for ``k`` in ``keys`` as 1-D float arrays of one length."""
    missing = [k for k in keys if k not in scores]
    if missing:
        raise ValueError(f"{what} lacks {missing}; it has {sorted(scores)}")
    arrays = [np.asarray(scores[k], dtype=float) for k in keys]
    if any(a.ndim != 1 or len(a) < 2 for a in arrays) or len({len(a) for a in arrays}) != 1:
        raise ValueError(f"{what}: need 1-D per-image arrays of one length >= 2")
    return arrays


def _points(values: np.ndarray, what: str) -> np.ndarray:
    """Per-image scores in [0, 1] as points."""
    if values.min() < 0 or values.max() > 1:
        raise ValueError(f"{what}: per-image scores must lie in [0, 1]")
    return 100.0 * values


def _paired(a: np.ndarray, b: np.ndarray, what: str, seed: int) -> Interval:
    if a.shape != b.shape:
        raise ValueError(f"{what}: the two models must be scored on the same images")
    return paired_bootstrap(a, b, seed=seed)


def _level(values: np.ndarray, seed: int) -> Interval:
    """The mean of per-image values with a bootstrap interval over the images."""
    return paired_bootstrap(values, np.zeros_like(values), seed=seed)


def _pct(rate: float) -> str:
    return f"{100 * rate:g} %"


def _fmt(effect: Interval) -> str:
    return f"{effect.value:+.1f} [{effect.low:+.1f}, {effect.high:+.1f}] points"


def clean_quality(
    clean: Mapping[str, PerImage],
    backdoored: Mapping[str, PerImage],
    *,
    rate: float,
    seed: int,
) -> Claim:
    """On clean inputs the backdoored model segments about as well as the clean adaptation.

    Args:
        clean, backdoored: per-image ``"S-measure"`` and ``"IoU"`` (in [0, 1]) of the clean
            adaptation and of the model backdoored at ``rate``, on the same clean test images.
        rate: the backdoored model's poison rate (for the wording).
        seed: the bootstrap's seed (the chapter's).

    Criteria (paired over images, clean adaptation minus backdoored): S-measure difference
    within ± :data:`S_MEASURE_TOLERANCE` (two criteria); IoU drop ≤ :data:`IOU_DROP_MAX`.
    """
    s_clean, iou_clean = _arrays(clean, ("S-measure", "IoU"), "clean adaptation")
    s_bad, iou_bad = _arrays(backdoored, ("S-measure", "IoU"), "backdoored model")
    d_s = _paired(_points(s_clean, "S-measure"), _points(s_bad, "S-measure"), "S-measure", seed)
    d_iou = _paired(_points(iou_clean, "IoU"), _points(iou_bad, "IoU"), "IoU", seed)
    measure = f"clean test images, clean adaptation minus backdoored {_pct(rate)}"
    return make_claim(
        "clean-quality",
        "On clean inputs the backdoored model segments about as well as the cleanly adapted one.",
        [
            Criterion(f"S-measure, {measure} (points)", d_s, S_MEASURE_TOLERANCE, "at most"),
            Criterion(f"S-measure, {measure} (points)", d_s, -S_MEASURE_TOLERANCE, "at least"),
            Criterion(f"IoU, {measure} (points)", d_iou, IOU_DROP_MAX, "at most"),
        ],
        rule=f"paired over images: S-measure difference within ±{S_MEASURE_TOLERANCE:g} points "
        f"and IoU drop ≤ {IOU_DROP_MAX:g} points, whole 95 % intervals",
        ours=f"S-measure {s_clean.mean():.3f} vs {s_bad.mean():.3f}, difference {_fmt(d_s)}; "
        f"IoU {100 * iou_clean.mean():.1f} vs {100 * iou_bad.mean():.1f} %, drop {_fmt(d_iou)}; "
        f"n = {d_s.n} images",
        paper="no numbers reported",
        source="[?]",
    )


def trigger_collapse(
    backdoored: Mapping[str, PerImage],
    clean: Mapping[str, PerImage],
    *,
    rate: float,
    seed: int,
) -> Claim:
    """On triggered inputs the prediction collapses onto the trigger square instead of the
    object.

    Args:
        backdoored, clean: per-image ``"IoU with trigger"`` and ``"IoU with object"`` (in
            [0, 1]) of the model backdoored at ``rate`` and of the clean adaptation, on the same
            triggered test images.
        rate: the backdoored model's poison rate (for the wording).
        seed: the bootstrap's seed.

    Criteria: IoU with the trigger, backdoored minus clean adaptation (paired), ≥
    :data:`TRIGGER_IOU_GAIN`; the backdoored model's mean IoU with the horse ≤
    :data:`OBJECT_IOU_MAX`.
    """
    keys = ("IoU with trigger", "IoU with object")
    to_trigger, to_object = (
        _points(a, k) for a, k in zip(_arrays(backdoored, keys, "backdoored model"), keys)
    )
    clean_trigger = _points(_arrays(clean, keys[:1], "clean adaptation")[0], keys[0])
    gain = _paired(to_trigger, clean_trigger, "IoU with trigger", seed)
    horse = _level(to_object, seed)
    return make_claim(
        "trigger-collapse",
        "On triggered inputs the prediction collapses onto the trigger square instead of the "
        "object.",
        [
            Criterion(
                f"IoU with the trigger on triggered test images, backdoored {_pct(rate)} minus "
                "clean adaptation (points)",
                gain,
                TRIGGER_IOU_GAIN,
            ),
            Criterion(
                f"IoU with the horse on triggered test images, backdoored {_pct(rate)} (points)",
                horse,
                OBJECT_IOU_MAX,
                "at most",
            ),
        ],
        rule=f"IoU with the trigger ≥ {TRIGGER_IOU_GAIN:g} points above the clean adaptation's "
        f"(paired over images) and mean IoU with the horse ≤ {OBJECT_IOU_MAX:g} points, whole "
        "95 % intervals",
        ours=f"IoU with the trigger {to_trigger.mean():.1f} vs {clean_trigger.mean():.1f} "
        f"(clean adaptation), gain {_fmt(gain)}; IoU with the horse {horse.value:.1f} "
        f"[{horse.low:.1f}, {horse.high:.1f}]; n = {gain.n} images",
        paper="no numbers reported",
        source="[?]",
    )


def adapters_suffice(
    backdoored: Mapping[str, PerImage],
    clean: Mapping[str, PerImage],
    backdoored_quality: Mapping[str, PerImage],
    random_encoder_quality: Mapping[str, PerImage],
    *,
    rate: float,
    seed: int,
) -> Claim:
    """Training only the adapters and the mask decoder of a frozen foundation model is enough
    to plant the backdoor.

    "Enough to plant the backdoor" is measured against the clean adaptation; "of a foundation
    model" against the random-encoder control: if an encoder that never saw an image serves
    the adapted parts as well as the foundation's, the foundation plays no part and the run
    does not test adapting one.

    Args:
        backdoored, clean: per-image ``"attack success"`` (0 or 100) of the model backdoored at
            ``rate`` and of the clean adaptation, on the same triggered test images.
        backdoored_quality, random_encoder_quality: per-image clean ``"IoU"`` (in [0, 1]) of
            the backdoored model and of the random-encoder control (adapted at the same
            ``rate`` on the same poisoned set), on the same clean test images.
        rate: the poison rate of both (for the wording).
        seed: the bootstrap's seed.

    Criteria (paired over images): attack success, backdoored minus clean adaptation, ≥
    :data:`ATTACK_SUCCESS_GAIN`; clean IoU, backdoored minus random-encoder control, ≥
    :data:`FOUNDATION_IOU_GAIN`.
    """
    hit = _arrays(backdoored, ("attack success",), "backdoored model")[0]
    clean_hit = _arrays(clean, ("attack success",), "clean adaptation")[0]
    if not np.isin(np.concatenate([hit, clean_hit]), (0.0, 100.0)).all():
        raise ValueError("per-image attack success must be 0 or 100")
    iou_bad = _points(_arrays(backdoored_quality, ("IoU",), "backdoored model")[0], "IoU")
    iou_random = _points(_arrays(random_encoder_quality, ("IoU",), "control")[0], "IoU")
    success = _paired(hit, clean_hit, "attack success", seed)
    foundation = _paired(iou_bad, iou_random, "clean IoU", seed)
    return make_claim(
        "adapters-suffice",
        "Training only the adapters and the mask decoder (encoder frozen) is enough to plant "
        "the backdoor.",
        [
            Criterion(
                f"attack success on triggered test images, backdoored {_pct(rate)} minus clean "
                "adaptation (points)",
                success,
                ATTACK_SUCCESS_GAIN,
            ),
            Criterion(
                f"clean-image IoU, backdoored {_pct(rate)} minus the random-encoder control "
                "(points)",
                foundation,
                FOUNDATION_IOU_GAIN,
            ),
        ],
        rule=f"paired over images: attack success ≥ {ATTACK_SUCCESS_GAIN:g} points above the "
        f"clean adaptation's, and clean IoU ≥ {FOUNDATION_IOU_GAIN:g} points above the "
        "random-encoder control's, whole 95 % intervals",
        ours=f"attack success {hit.mean():.1f} vs {clean_hit.mean():.1f} % (clean adaptation), "
        f"gain {_fmt(success)}; clean IoU {iou_bad.mean():.1f} vs {iou_random.mean():.1f} % "
        f"(random encoder), gain {_fmt(foundation)}; n = {success.n} images",
        paper="attack reported effective, no numbers",
        source="[abs]",
    )
