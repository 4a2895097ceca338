"""Influencer Backdoor Attack (IBA) on semantic segmentation.

Lan, Gu, Torr and Zhao, "Influencer Backdoor Attack on Semantic Segmentation", ICLR 2024,
arXiv:2303.12054 (authors' code: github.com/Maxproto/IBA).

Threat model: the attacker poisons part of the training set of a segmentation model but does
not control training. At test time a small trigger pasted on *non-victim* pixels should make
the model label every pixel of the victim class (e.g. car) as the target class (e.g. road),
while all other pixels stay correct.

Poisoning a training set (label maps ``[H, W]`` of class ids, 255 = ignore):

1. selection: only images that contain the victim class are poisoned;
2. label rewriting: every victim pixel of a poisoned label map is relabelled as the target;
3. trigger placement, by method:
   - ``"baseline"``: the trigger's whole footprint lies inside a single non-victim class
     region (never on ignore pixels) and its centre at least ``margin`` pixels from every
     border, at a random valid position;
   - ``"nni"`` (nearest-neighbour injection): as baseline, and the centre's distance to the
     nearest victim pixel lies in the band ``nni_band = (L, U]``;
   - ``"prl"`` (pixel random labelling): baseline placement, and *every* label map of the
     training set, poisoned or not, gets ``prl_pixels`` positions drawn uniformly among all its
     pixels relabelled with classes drawn uniformly from those present in the map (ignore and
     victim included); the original victim pixels are then restored, so a pixel's label can
     no longer be predicted from its own neighbourhood and the model must look at the wider
     context, which includes a distant trigger.

Distances are Chebyshev, ``max(|dy|, |dx|)`` in pixels, from the trigger centre
``(top + size // 2, left + size // 2)`` to the nearest victim pixel: the band ``(L, U]`` is the
ring between two square neighbourhoods of the victim region. Images are float ``[3, H, W]`` in
[0, 1]. A position request that no placement satisfies raises :class:`NoTriggerPositionError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..fidelity import Deviation

METHODS = ("baseline", "nni", "prl")


class NoTriggerPositionError(ValueError):
    """The label map offers no trigger position that satisfies the placement rule."""


@dataclass(frozen=True)
class TriggeredSet:
    """Triggered test images: ``images`` ``[M, 3, H, W]``, their ``labels`` ``[M, H, W]``, the
    ``indices`` ``[M]`` they came from, trigger ``centres`` ``[M, 2]`` and centre-to-victim
    ``distances`` ``[M]`` (pixels)."""

    images: torch.Tensor
    labels: torch.Tensor
    indices: torch.Tensor
    centres: torch.Tensor
    distances: torch.Tensor

    def __len__(self) -> int:
        return len(self.indices)

    def restrict(self, indices: torch.Tensor) -> TriggeredSet:
        """The rows of this set whose source image is one of ``indices``."""
        keep = torch.isin(self.indices, indices)
        return TriggeredSet(
            self.images[keep],
            self.labels[keep],
            self.indices[keep],
            self.centres[keep],
            self.distances[keep],
        )


def images_in_every_set(sets: Sequence[TriggeredSet]) -> torch.Tensor:
    """Sorted source indices present in every one of ``sets`` (e.g. the images with a trigger
    position in every distance band, so that the bands compare the same scenes)."""
    if not sets:
        raise ValueError("need at least one triggered set")
    common = torch.unique(sets[0].indices)
    for other in sets[1:]:
        common = common[torch.isin(common, other.indices)]
    return common


@dataclass(frozen=True)
class IBAConfig:
    """Settings of one IBA poisoning.

    Attributes:
        method: ``"baseline"``, ``"nni"`` or ``"prl"``.
        victim, target: class ids (paper's Cityscapes setting: car -> road).
        trigger_size: side of the square trigger in pixels (for an odd side the centre is its
            middle pixel).
        margin: minimum distance in pixels between the trigger centre and every image border.
        nni_band: ``(L, U)``: NNI keeps the centres whose distance ``d`` to the victim has
            ``L < d <= U``.
        prl_pixels: positions relabelled by PRL in every training label map (PRL only).
        ignore_index: label of unlabelled pixels (never covered by the trigger).
    """

    method: str
    victim: int
    target: int
    trigger_size: int = 7
    margin: int = 29
    nni_band: tuple[float, float] = (0.0, 9.0)
    prl_pixels: int = 2060
    ignore_index: int = 255

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(
                f"unknown IBA method {self.method!r}; choose one of {', '.join(METHODS)}"
            )
        if self.victim == self.target:
            raise ValueError("victim and target classes must differ")
        if self.trigger_size < 1 or self.margin < 0 or self.prl_pixels < 0:
            raise ValueError("trigger_size must be >= 1, margin and prl_pixels >= 0")
        _check_band(self.nni_band)


def _check_band(band: tuple[float, float]) -> None:
    low, high = band
    if not 0 <= low < high:
        raise ValueError(f"a distance band (L, U] needs 0 <= L < U, got {band}")


def in_band(distance: torch.Tensor, band: tuple[float, float]) -> torch.Tensor:
    """Boolean mask of the distances ``d`` with ``L < d <= U`` for ``band = (L, U)``."""
    _check_band(band)
    return (distance > band[0]) & (distance <= band[1])


def _check_label(label: torch.Tensor) -> None:
    if label.ndim != 2:
        raise ValueError(f"expected one label map [H, W], got shape {tuple(label.shape)}")


def iba_trigger(size: int = 7, seed: int = 0) -> torch.Tensor:
    """A fixed, high-contrast square trigger ``[3, size, size]`` in [0, 1].

    A checkerboard of 2x2-pixel cells in saturated colours drawn once from ``seed``. The
    paper pastes a small Hello Kitty picture, which we cannot ship; any conspicuous fixed
    pattern plays its role (declared in :data:`DEVIATIONS`).
    """
    if size < 2:
        raise ValueError(f"trigger size must be >= 2, got {size}")
    g = torch.Generator().manual_seed(seed)
    palette = torch.tensor(
        [[1.0, 0.0, 1.0], [1.0, 1.0, 0.0], [0.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]]
    )
    cells = -(-size // 2)
    colours = palette[
        torch.randint(0, len(palette), (cells, cells), generator=g)
    ]  # [cells, cells, 3]
    return (
        colours.repeat_interleave(2, 0)
        .repeat_interleave(2, 1)[:size, :size]
        .permute(2, 0, 1)
        .contiguous()
    )


def victim_distance(label: torch.Tensor, victim: int) -> torch.Tensor:
    """Chebyshev distance ``[H, W]`` (pixels) from every pixel to the nearest victim pixel.

    ``d(p) = min over victim pixels q of max(|p_y - q_y|, |p_x - q_x|)``: zero on victim
    pixels, ``d <= r`` exactly where the ``(2r + 1)``-pixel square around ``p`` holds a victim
    pixel, ``inf`` everywhere when the map holds none. Computed separably: the distance along
    each row first, ``r(y', x) = min |x - x'|`` over victim pixels ``(y', x')``, then
    ``d(y, x) = min over y' of max(|y - y'|, r(y', x))``.
    """
    _check_label(label)
    is_victim = label == victim
    h, w = label.shape
    if not is_victim.any():
        return torch.full((h, w), float("inf"))
    ys, xs = torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32)
    along_x = (xs[None, :, None] - xs[None, None, :]).abs()  # [1, x, x']
    rows = torch.where(is_victim[:, None, :], along_x, torch.inf).amin(2)  # [y', x]
    along_y = (ys[:, None, None] - ys[None, :, None]).abs()  # [y, y', 1]
    return torch.maximum(along_y, rows[None]).amin(1)


def trigger_centres(
    label: torch.Tensor,
    *,
    size: int,
    victim: int,
    margin: int = 0,
    band: tuple[float, float] | None = None,
    ignore_index: int = 255,
) -> torch.Tensor:
    """Boolean map ``[H, W]`` of valid trigger centres under the IBA placement rule.

    A centre ``(y, x)`` is valid when the trigger's footprint (rows ``y - size // 2`` to
    ``y - size // 2 + size - 1``, likewise for columns) lies inside the image and covers pixels
    of one single class that is neither the victim nor ``ignore_index``; when the centre is at
    least ``margin`` pixels from every border (``margin <= y < H - margin``, likewise for
    ``x``); and, when ``band = (L, U)`` is given, when its distance ``d`` to the nearest victim
    pixel (:func:`victim_distance`) has ``L < d <= U``.
    """
    _check_label(label)
    h, w = label.shape
    valid = torch.zeros(h, w, dtype=torch.bool)
    span = (h - size + 1, w - size + 1)  # top-left positions of a footprint inside the image
    if min(span) < 1:
        return valid
    classes = label.unique()
    classes = classes[(classes != victim) & (classes != ignore_index)]
    if len(classes):
        masks = (label[None] == classes[:, None, None]).float()  # [C, H, W] one map per class
        tops = (F.avg_pool2d(masks[:, None], size, stride=1)[:, 0] > 1 - 1e-6).any(0)
        half = size // 2
        valid[half : half + span[0], half : half + span[1]] = tops
    if margin:
        valid[:margin] = valid[h - margin :] = False
        valid[:, :margin] = valid[:, w - margin :] = False
    if band is not None:
        valid &= in_band(victim_distance(label, victim), band)
    return valid


def choose_centre(valid: torch.Tensor, generator: torch.Generator | None = None) -> tuple[int, int]:
    """A uniformly random ``(y, x)`` among the ``True`` entries of ``valid``."""
    options = torch.nonzero(valid)
    if len(options) == 0:
        raise NoTriggerPositionError(
            "no valid trigger position: no footprint fits inside a single non-victim "
            "class region (with the required margin and distance band)"
        )
    return tuple(options[int(torch.randint(len(options), (1,), generator=generator))].tolist())


def paste_trigger(
    image: torch.Tensor, trigger: torch.Tensor, centre: tuple[int, int]
) -> torch.Tensor:
    """A copy of ``image`` ``[3, H, W]`` with ``trigger`` ``[3, s, s]`` pasted at ``centre``."""
    size = trigger.shape[-1]
    top, left = centre[0] - size // 2, centre[1] - size // 2
    if top < 0 or left < 0 or top + size > image.shape[1] or left + size > image.shape[2]:
        raise ValueError(
            f"a {size}x{size} trigger centred at {centre} leaves the {tuple(image.shape[1:])} image"
        )
    out = image.clone()
    out[:, top : top + size, left : left + size] = trigger
    return out


def rewrite_victim(label: torch.Tensor, victim: int, target: int) -> torch.Tensor:
    """A copy of ``label`` with every victim pixel relabelled as ``target``."""
    return label.masked_fill(label == victim, target)


def random_pixel_labels(
    label: torch.Tensor, num_pixels: int, *, victim: int, seed: int = 0
) -> torch.Tensor:
    """PRL on one label map: ``num_pixels`` random positions get random classes of the map.

    The positions are drawn uniformly without replacement among all ``H * W`` pixels (ignore
    and victim pixels included), each from a generator seeded with ``seed`` on every call, so
    every map of the same size gets the same positions. Each gets a class drawn uniformly from
    the values present in the map (``label.unique()``, so ignore and victim included). Every
    original victim pixel is restored afterwards; a chosen non-victim pixel may become victim.
    """
    _check_label(label)
    if not 0 <= num_pixels <= label.numel():
        raise ValueError(f"cannot relabel {num_pixels} pixels of a {tuple(label.shape)} label map")
    g = torch.Generator().manual_seed(seed)
    picked = torch.randperm(label.numel(), generator=g)[:num_pixels]
    classes = label.unique()
    flat = label.flatten().clone()
    flat[picked] = classes[torch.randint(len(classes), (num_pixels,), generator=g)]
    return flat.reshape(label.shape).masked_fill(label == victim, victim)


def eligible_for_poisoning(
    labels: torch.Tensor, config: IBAConfig, min_victim_pixels: int = 1
) -> torch.Tensor:
    """Boolean ``[N]``: label maps with at least ``min_victim_pixels`` victim pixels and an NNI
    position.

    Requiring an NNI-band position for every method lets baseline, NNI and PRL poison the
    very same images, so they differ only in trigger placement and labelling.
    """
    keep = []
    for label in labels:
        enough = int((label == config.victim).sum()) >= min_victim_pixels
        keep.append(
            enough
            and bool(
                trigger_centres(
                    label,
                    size=config.trigger_size,
                    victim=config.victim,
                    margin=config.margin,
                    band=config.nni_band,
                    ignore_index=config.ignore_index,
                ).any()
            )
        )
    return torch.tensor(keep, dtype=torch.bool)


def select_poison_indices(
    eligible: torch.Tensor, rate: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``round(rate * N)`` random indices among the eligible images (``N`` = whole training set)."""
    if not 0 <= rate <= 1:
        raise ValueError(f"poison rate must lie in [0, 1], got {rate}")
    count = round(rate * len(eligible))
    pool = torch.nonzero(eligible).flatten()
    if count > len(pool):
        raise ValueError(
            f"poison rate {rate} needs {count} images but only {len(pool)} are eligible"
        )
    return pool[torch.randperm(len(pool), generator=generator)[:count]].sort().values


def poison_segmentation_set(
    images: torch.Tensor,
    labels: torch.Tensor,
    indices: torch.Tensor,
    trigger: torch.Tensor,
    config: IBAConfig,
    generator: torch.Generator | None = None,
    *,
    prl_seed: int = 0,
):
    """Poison ``images[indices]`` / ``labels[indices]`` with IBA; under PRL relabel every map.

    Each poisoned image gets the trigger at a position drawn (from ``generator``) on its clean
    label map, and its victim pixels are rewritten as the target. With ``"prl"`` every label map
    of the set first goes through :func:`random_pixel_labels` (seeded with ``prl_seed``), and a
    poisoned map's victim pixels, those PRL created included, are rewritten after it; the other
    methods leave the unpoisoned samples clean.

    Args:
        images: ``[N, 3, H, W]`` in [0, 1]. labels: ``[N, H, W]``. indices: images to poison.
        trigger: ``[3, s, s]`` with ``s == config.trigger_size``.

    Returns ``(images, labels, centres)``: poisoned copies and the ``[len(indices), 2]`` trigger
    centres. Raises :class:`NoTriggerPositionError` for an image without a valid position.
    """
    if trigger.shape[-1] != config.trigger_size:
        raise ValueError(
            f"trigger is {trigger.shape[-1]} px but config.trigger_size is {config.trigger_size}"
        )
    images, out = images.clone(), labels.clone()
    if config.method == "prl":
        for i, label in enumerate(labels):
            out[i] = random_pixel_labels(
                label, config.prl_pixels, victim=config.victim, seed=prl_seed
            )
    band = config.nni_band if config.method == "nni" else None
    centres = []
    for i in indices.tolist():
        valid = trigger_centres(
            labels[i],
            size=config.trigger_size,
            victim=config.victim,
            margin=config.margin,
            band=band,
            ignore_index=config.ignore_index,
        )
        centre = choose_centre(valid, generator)
        images[i] = paste_trigger(images[i], trigger, centre)
        out[i] = rewrite_victim(out[i], config.victim, config.target)
        centres.append(centre)
    return images, out, torch.tensor(centres, dtype=torch.long).reshape(-1, 2)


def trigger_test_images(
    images: torch.Tensor,
    labels: torch.Tensor,
    trigger: torch.Tensor,
    *,
    victim: int,
    bands: Sequence[tuple[float, float] | None],
    margin: int = 0,
    ignore_index: int = 255,
    generator: torch.Generator | None = None,
    placements: int = 1,
) -> list[TriggeredSet]:
    """Test-time triggering: for each band, paste ``trigger`` at a distance in that band from the
    victim.

    Placement follows the training rule (one non-victim class region, centre ``margin`` from
    the border); a band ``(L, U)`` keeps the centres at distance ``L < d <= U``
    (:func:`victim_distance`), and ``None`` allows any distance. Images without a valid
    position for a band are left out of that band's set. Each image's placement map and
    distance map are computed once and shared by all bands. With ``placements`` ``k > 1`` every
    image gets ``k`` independent random positions per band (adjacent rows with the same index),
    which averages out where in the band the trigger happens to land.

    Args:
        images: ``[N, 3, H, W]`` in [0, 1]. labels: ``[N, H, W]``. trigger: ``[3, s, s]``.
        bands: distance bands ``(L, U]`` in pixels, or ``None``.

    Returns one :class:`TriggeredSet` per band.
    """
    for band in bands:
        if band is not None:
            _check_band(band)
    if placements < 1:
        raise ValueError(f"need at least one placement per image, got {placements}")
    size = trigger.shape[-1]
    found: list[list[tuple[int, tuple[int, int], float]]] = [[] for _ in bands]
    for i, label in enumerate(labels):
        anywhere = trigger_centres(
            label, size=size, victim=victim, margin=margin, ignore_index=ignore_index
        )
        dist = victim_distance(label, victim)
        for slot, band in enumerate(bands):
            valid = anywhere if band is None else anywhere & in_band(dist, band)
            if valid.any():
                for _ in range(placements):
                    centre = choose_centre(valid, generator)
                    found[slot].append((i, centre, float(dist[centre])))
    sets = []
    for hits in found:
        kept = torch.tensor([i for i, _, _ in hits], dtype=torch.long)
        pasted = [paste_trigger(images[i], trigger, c) for i, c, _ in hits]
        sets.append(
            TriggeredSet(
                torch.stack(pasted) if pasted else images[:0],
                labels[kept],
                kept,
                torch.tensor([c for _, c, _ in hits], dtype=torch.long).reshape(-1, 2),
                torch.tensor([d for _, _, d in hits]),
            )
        )
    return sets


_CONFIG = "Maxproto/IBA@c32bc92 config/cityscapes/cityscapes_deeplabv3.yaml"
_ALL_CLAIMS = ("victim-flips-benign-intact", "low-rate-order", "distance-decay")
_PROFILES = ("backdoorbook.book.profiles.ch03_iba.CI", "backdoorbook.book.profiles.ch03_iba.PAPER")

#: Where this module's IBA departs from the authors' code (Maxproto/IBA@c32bc92).
DEVIATIONS = (
    Deviation(
        item="Trigger picture",
        authors="a Hello Kitty picture (trigger/hello_kitty.png, 225x225, opaque) resized "
        "bilinearly to the trigger size and pasted opaquely (Maxproto/IBA@c32bc92 "
        "util/backdoor/image_processor.py:43-69; trigger_transparency 1 in "
        "config/cityscapes/cityscapes_deeplabv3.yaml:67-69)",
        ours="a fixed checkerboard of 2x2-pixel cells in five saturated colours drawn from the "
        "seed, pasted opaquely",
        why="we cannot ship the picture; any conspicuous fixed pattern plays its role",
        claims=_ALL_CLAIMS,
        where=("backdoorbook.attacks.iba.iba_trigger",),
    ),
    Deviation(
        item="Sizes at our resolution",
        authors="at Cityscapes' 1024x512 working resolution: a 55 px trigger (0.58 % of the "
        "image), centres at least 200 px from every border, 100,000 PRL positions per map "
        f"(19 %) ({_CONFIG}:74-80, 86-87; util/backdoor/influencer_attack.py:106-110); fixed "
        "pixel values, kept at scale 1 by cityscapes_pspnet50.yaml. Their paste covers rows "
        "c-k..c+k with k = (s-1)//2, so it works for odd sides only "
        "(util/backdoor/image_processor.py:56-68)",
        ours="CamVid at 120x90 (ci) or 240x180 (paper) with lengths scaled by the square root "
        "of the pixel ratio (0.1435, 0.2871) and counts by the ratio: trigger 7 / 15 px (the "
        "odd side nearest 7.9 / 15.8; 0.45 % / 0.52 % of the image), margin 29 / 57 px, PRL "
        "2,060 / 8,240 positions. Our paste also takes even sides (centre at top + s // 2)",
        why="the authors' pixel values do not fit our images (a 200 px margin on a 90-row "
        "image); scaling keeps each one's share of the image",
        claims=_ALL_CLAIMS,
        where=_PROFILES,
    ),
    Deviation(
        item="NNI band in training",
        authors="no training band in the code (train_NNI False, train_lower_dist = "
        f"train_upper_dist = 0, {_CONFIG}:72-78); the one band is the test-time (0, 60] px "
        "at 1024x512 (lines 83-89)",
        ours="training (and the eligibility check) use that band scaled like every length: "
        "(0, 9] px at 120x90, (0, 17] px at 240x180",
        why="the paper's training band is not in the code; the test band is the one setting "
        "the code gives for how near the victim NNI places the trigger",
        claims=_ALL_CLAIMS,
        where=_PROFILES,
    ),
    Deviation(
        item="Which training images are poisoned",
        authors="the first train_num_poison (298, 10 % of 2,975) images of a shuffled list of "
        "all training images with a victim pixel; an image with no valid centre keeps its "
        "rewritten label but gets no trigger (Maxproto/IBA@c32bc92 "
        "util/backdoor/poison_data_handler.py:11-24, influencer_attack.py:129-139, "
        "image_processor.py:58)",
        ours="a fraction of the whole set, drawn among the images with at least "
        "min_victim_pixels victim pixels and a centre in the NNI band, so that every method "
        "poisons the same images and every poisoned image carries its trigger",
        why="baseline, NNI and PRL then differ only in placement and labelling; a rewritten "
        "label without a trigger teaches car-road confusion, not the backdoor",
        claims=_ALL_CLAIMS,
        where=(
            "backdoorbook.attacks.iba.eligible_for_poisoning",
            "backdoorbook.attacks.iba.select_poison_indices",
        ),
    ),
    Deviation(
        item="Test-time trigger placement",
        authors="one NNI placement per val image with a victim pixel: Chebyshev distance "
        "(0, 60] px, single-class window, centre at least 200 px from the border; images "
        f"without a valid centre are scored untriggered; no distance sweep ({_CONFIG}:82-91)",
        ours="test_placements random placements per image at any distance (claims "
        "victim-flips-benign-intact and low-rate-order) and as many per Chebyshev band (L, U] "
        "of a sweep (claim distance-decay), each under the training rule with the border "
        "margin, an image's counts summed over its placements; the sweep keeps only the images "
        "with a position in every band",
        why="the paper's claims concern a trigger placed anywhere and at growing distances, "
        "which the code's one near band does not test; several placements average out where "
        "the trigger lands, and one image set for all bands keeps scene content out of the "
        "distance effect",
        claims=_ALL_CLAIMS,
        where=("backdoorbook.attacks.iba.trigger_test_images",),
    ),
)
