"""Chapter 3's claims: the Influencer Backdoor Attack on CamVid.

Lan, Gu, Torr and Zhao, "Influencer Backdoor Attack on Semantic Segmentation", ICLR 2024,
arXiv:2303.12054. Every rule takes per-image pixel counts that the chapter computes on test
images shared by all the models it compares (and, in the distance sweep, by all the bands), so
every effect is paired by image: the bootstrap resamples images, and the pixels of one image
move together.

- :func:`victim_flips_benign_intact`: ASR against the attacked model's own rate without the
  trigger and against the clean control, and CBA and PBA relative to the clean control;
- :func:`low_rate_order`: PRL minus NNI and NNI minus baseline ASR at a low poison rate;
- :func:`distance_decay`: the ASR drop from the nearest to the farthest distance band, and
  PRL's drop against the other methods'.

Counts are in pixels; effects are in percentage points, with 95 % intervals.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .core import Claim, Criterion, make_claim
from .intervals import CONFIDENCE, Interval, _bootstrap, ratio_bootstrap

#: Claim 1: the trigger must raise ASR by at least this many points over the attacked model's
#: untriggered rate and over the clean model's ASR (the chapter's margin since its first build).
ASR_MARGIN = 50.0
#: Claim 1: CBA and PBA may fall by at most this many mIoU points below the clean control's.
BENIGN_TOLERANCE = 3.0
#: Claim 2: each step of the order PRL >= NNI >= baseline must reach this (the reported order,
#: with no tolerance in either direction).
ORDER_MARGIN = 0.0
#: Claim 3: baseline and NNI ASR fall by at least this many points from the nearest band to the
#: farthest.
DISTANCE_DROP = 10.0
#: Claim 3: "PRL falls less": another method's drop minus PRL's must reach this.
PRL_DROP_MARGIN = 0.0
#: The methods in the order the paper ranks them at a low poison rate.
ORDER = ("prl", "nni", "baseline")


@dataclass(frozen=True)
class ModelCounts:
    """One model's per-image pixel counts on the chapter's test images.

    Rows of ``flips``, ``flips_untriggered``, ``victims`` and ``triggered_iou`` are the
    triggered test images, in one order for every model; rows of ``clean_iou`` are the clean
    test images.

    Attributes:
        flips: victim pixels predicted as the target with the trigger (summed over an image's
            trigger placements).
        flips_untriggered: the same, on the same images without the trigger, times the number
            of placements, so that both share ``victims``.
        victims: the victim pixels, times the number of placements.
        clean_iou: ``(intersections, unions)`` ``[N, K]`` on the clean test images (CBA).
        triggered_iou: ``(intersections, unions)`` ``[M, K]`` on the triggered images with the
            victim pixels ignored (PBA).
    """

    flips: np.ndarray
    flips_untriggered: np.ndarray
    victims: np.ndarray
    clean_iou: tuple[np.ndarray, np.ndarray]
    triggered_iou: tuple[np.ndarray, np.ndarray]

    def __post_init__(self):
        for name in ("flips", "flips_untriggered", "victims"):
            object.__setattr__(self, name, np.asarray(getattr(self, name), dtype=float))
        for name in ("clean_iou", "triggered_iou"):
            pair = tuple(np.asarray(x, dtype=float) for x in getattr(self, name))
            if len(pair) != 2 or pair[0].shape != pair[1].shape or pair[0].ndim != 2:
                raise ValueError(f"{name} must be (intersections, unions) of one shape [N, K]")
            object.__setattr__(self, name, pair)
        rows = {len(self.flips), len(self.flips_untriggered), len(self.victims)}
        if len(rows | {len(self.triggered_iou[0])}) != 1:
            raise ValueError("the triggered-image counts must have one row per triggered image")

    @property
    def asr(self) -> float:
        """ASR in percent, pooled over the triggered images."""
        return 100.0 * float(np.sum(self.flips)) / float(np.sum(self.victims))

    @property
    def untriggered_rate(self) -> float:
        """Victim pixels predicted as the target without the trigger, in percent."""
        return 100.0 * float(np.sum(self.flips_untriggered)) / float(np.sum(self.victims))


def miou_difference(
    a: tuple[np.ndarray, np.ndarray],
    b: tuple[np.ndarray, np.ndarray],
    *,
    classes: Sequence[int] | None = None,
    seed: int = 0,
    confidence: float = CONFIDENCE,
) -> Interval:
    """mIoU of ``a`` minus mIoU of ``b`` (points), two models' ``(intersections, unions)``
    ``[N, K]`` on the same ``N`` images, each pooled over the images and averaged over
    ``classes`` (default: all ``K``; see
    :func:`backdoorbook.evaluation.segmentation.miou_from_counts`), with a seeded bootstrap
    that resamples images. ``n`` is the number of images."""
    arrays = [np.asarray(x, dtype=float) for x in (*a, *b)]
    if len({x.shape for x in arrays}) != 1 or arrays[0].ndim != 2 or len(arrays[0]) < 2:
        raise ValueError("need four [N, K] count arrays of one shape with N >= 2")
    keep = np.arange(arrays[0].shape[1]) if classes is None else np.asarray(list(classes))

    def miou(inter, union, axis):
        inter, union = inter.sum(axis), union.sum(axis)  # [K, ...]
        return 100.0 * np.where(union > 0, inter / np.maximum(union, 1), 0.0)[keep].mean(0)

    def statistic(ia, ua, ib, ub, axis):
        return miou(ia, ua, axis) - miou(ib, ub, axis)

    data = tuple(x.T for x in arrays)  # [K, N]: the bootstrap resamples the last axis
    value = float(statistic(*data, axis=-1))
    n = len(arrays[0])
    if np.array_equal(arrays[0], arrays[2]) and np.array_equal(arrays[1], arrays[3]):
        return Interval(value, value, value, n)
    low, high = _bootstrap(data, statistic, seed, confidence)
    return Interval(value, low, high, n)


def _arrays(per_method: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {m: np.asarray(v, dtype=float) for m, v in per_method.items()}


def _same_images(victims: Sequence[np.ndarray]) -> np.ndarray:
    first = np.asarray(victims[0])
    if any(not np.array_equal(first, np.asarray(v)) for v in victims[1:]):
        raise ValueError("the arms must be scored on the same images (their victim pixels differ)")
    return first


def _span(i: Interval) -> str:
    return f"{i.value:+.1f} [{i.low:+.1f}, {i.high:+.1f}]"


def _note(criteria: Sequence[Criterion]) -> str:
    """Which criteria did not pass, from this run's intervals (empty when all did)."""
    parts = []
    for verdict in ("not reproduced", "inconclusive"):
        failed = [c.measure.split(",")[0] for c in criteria if c.verdict == verdict]
        if failed:
            parts.append(f"{verdict}: " + "; ".join(failed))
    return " | ".join(parts)


def victim_flips_benign_intact(
    attacked: Mapping[str, ModelCounts],
    clean: ModelCounts,
    *,
    victim: int,
    rate: float,
    seed: int = 0,
) -> Claim:
    """Claim 1: with the trigger, victim pixels turn into the target while CBA and PBA hold.

    For every attacked model, four criteria paired over the same images: ASR minus the model's
    own rate without the trigger, and ASR minus the clean control's ASR, each at least
    :data:`ASR_MARGIN` (victim pixels pooled per image, :func:`~.intervals.ratio_bootstrap`);
    CBA and PBA minus the clean control's, each at least ``-``:data:`BENIGN_TOLERANCE`
    (:func:`miou_difference`; PBA over the classes other than ``victim``).
    """
    victims = _same_images([clean.victims, *(m.victims for m in attacked.values())])
    num_classes = np.shape(clean.clean_iou[0])[1]
    benign = [c for c in range(num_classes) if c != victim]
    images, test_images = len(victims), len(clean.clean_iou[0])
    criteria, ours = [], []
    for method, m in attacked.items():
        own = ratio_bootstrap(m.flips, m.flips_untriggered, victims, seed=seed)
        control = ratio_bootstrap(m.flips, clean.flips, victims, seed=seed)
        cba = miou_difference(m.clean_iou, clean.clean_iou, seed=seed)
        pba = miou_difference(m.triggered_iou, clean.triggered_iou, classes=benign, seed=seed)
        criteria += [
            Criterion(
                f"{method}: ASR minus its rate without the trigger, points, {images} images",
                own,
                ASR_MARGIN,
            ),
            Criterion(
                f"{method}: ASR minus the clean control's ASR, points, {images} images",
                control,
                ASR_MARGIN,
            ),
            Criterion(
                f"{method}: CBA minus the clean control's, mIoU points, {test_images} images",
                cba,
                -BENIGN_TOLERANCE,
            ),
            Criterion(
                f"{method}: PBA minus the clean control's, mIoU points, {images} images",
                pba,
                -BENIGN_TOLERANCE,
            ),
        ]
        ours.append(
            f"{method}: ASR {m.asr:.1f} % (without trigger {m.untriggered_rate:.1f} %), "
            f"ASR − untriggered {_span(own)}, ASR − clean {_span(control)}, "
            f"ΔCBA {_span(cba)}, ΔPBA {_span(pba)}"
        )
    return make_claim(
        "victim-flips-benign-intact",
        "With the trigger on non-victim pixels, victim pixels are predicted as the target class "
        "while CBA and PBA stay close to the clean model.",
        criteria,
        rule=f"at {100 * rate:g} % poisoning, for baseline, NNI and PRL (95 % intervals paired "
        f"over the same images): ASR − the model's untriggered rate ≥ {ASR_MARGIN:g} points, "
        f"ASR − clean ASR ≥ {ASR_MARGIN:g} points, CBA and PBA − clean ≥ "
        f"−{BENIGN_TOLERANCE:g} mIoU points",
        ours="; ".join(ours)
        + f"; clean control: ASR {clean.asr:.1f} % ({images} triggered images, "
        f"{int(victims.sum())} victim pixels counted)",
        paper="95 % ASR at 10 % poisoning (VOC)",
        source="[review]",
        note=_note(criteria),
    )


def low_rate_order(
    flips: Mapping[str, np.ndarray], victims: np.ndarray, *, rate: float, seed: int = 0
) -> Claim:
    """Claim 2: PRL ≥ NNI ≥ baseline in ASR at a low poison rate.

    ``flips[method]``: per triggered image, victim pixels predicted as the target; ``victims``:
    the images' victim pixels (the same images for every method). Each step of the order is its
    own criterion, ASR(upper) − ASR(lower) ≥ :data:`ORDER_MARGIN`, paired over the images.
    """
    missing = set(ORDER) - set(flips)
    if missing:
        raise ValueError(f"need the flips of every method; missing {sorted(missing)}")
    flips, victims = _arrays(flips), np.asarray(victims, dtype=float)
    criteria = [
        Criterion(
            f"ASR({upper}) − ASR({lower}), points, {len(victims)} images",
            ratio_bootstrap(flips[upper], flips[lower], victims, seed=seed),
            ORDER_MARGIN,
        )
        for upper, lower in zip(ORDER, ORDER[1:])
    ]
    total = victims.sum()
    return make_claim(
        "low-rate-order",
        "At a low poison rate, PRL ≥ NNI ≥ baseline in ASR.",
        criteria,
        rule=f"at {100 * rate:g} % poisoning: ASR(PRL) − ASR(NNI) ≥ {ORDER_MARGIN:g} and "
        f"ASR(NNI) − ASR(baseline) ≥ {ORDER_MARGIN:g} points, each with its own 95 % interval "
        "paired over the same triggered images",
        ours=", ".join(f"{m} ASR {100 * flips[m].sum() / total:.1f} %" for m in ORDER)
        + "; "
        + ", ".join(f"{c.measure.split(',')[0]} {_span(c.effect)}" for c in criteria),
        paper="PRL > NNI > baseline at low poison rates (Cityscapes; "
        "reviewers' numbers unconfirmed)",
        source="[review]",
        note=_note(criteria),
    )


def distance_decay(
    near: Mapping[str, np.ndarray],
    far: Mapping[str, np.ndarray],
    victims: np.ndarray,
    *,
    near_band: str,
    far_band: str,
    rate: float,
    seed: int = 0,
) -> Claim:
    """Claim 3: baseline and NNI ASR fall as the trigger moves away from the victim; PRL's less.

    ``near[method]``, ``far[method]``: per image, victim pixels predicted as the target with the
    trigger in the nearest and in the farthest band, on the *same* images (those with a
    position in every band); ``victims``: their victim pixels. Criteria, paired over the images:
    the drop ASR(near) − ASR(far) of baseline and of NNI ≥ :data:`DISTANCE_DROP`, and each of
    those drops minus PRL's ≥ :data:`PRL_DROP_MARGIN`.
    """
    missing = set(ORDER) - (set(near) & set(far))
    if missing:
        raise ValueError(f"need near and far flips of every method; missing {sorted(missing)}")
    near, far, victims = _arrays(near), _arrays(far), np.asarray(victims, dtype=float)
    n = len(victims)
    drops = {m: ratio_bootstrap(near[m], far[m], victims, seed=seed) for m in ORDER}
    criteria = [
        Criterion(
            f"{m}: ASR(band {near_band}) − ASR(band {far_band}), points, {n} images",
            drops[m],
            DISTANCE_DROP,
        )
        for m in ("baseline", "nni")
    ] + [
        Criterion(
            f"{m}'s drop − PRL's drop, points, {n} images",
            # (near_m - far_m) - (near_prl - far_prl), pooled over the same victim pixels
            ratio_bootstrap(
                near[m] + far["prl"],
                far[m] + near["prl"],
                victims,
                seed=seed,
            ),
            PRL_DROP_MARGIN,
        )
        for m in ("baseline", "nni")
    ]
    return make_claim(
        "distance-decay",
        "Baseline and NNI ASR fall as the trigger moves away from the victim; PRL falls less.",
        criteria,
        rule=f"at {100 * rate:g} % poisoning, on the images with a trigger position in every "
        f"band: ASR(band {near_band} px) − ASR(band {far_band} px) ≥ {DISTANCE_DROP:g} points "
        f"for baseline and NNI, and each of their drops − PRL's ≥ {PRL_DROP_MARGIN:g} points "
        "(95 % intervals paired over the images)",
        ours=", ".join(f"{m} drop {_span(drops[m])}" for m in ORDER)
        + f" ({n} images, {int(victims.sum())} victim pixels counted per band)",
        paper="baseline / NNI ASR falls with distance, PRL holds (reviewers' numbers unconfirmed)",
        source="[review]",
        note=_note(criteria),
    )
