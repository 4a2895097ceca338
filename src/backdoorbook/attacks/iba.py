"""Influencer Backdoor Attack (IBA) on semantic segmentation.

Lan, Gu, Torr and Zhao, "Influencer Backdoor Attack on Semantic Segmentation", ICLR 2024,
arXiv:2303.12054 (authors' code: github.com/Maxproto/IBA).

Threat model: the attacker poisons part of the training set of a segmentation model but does
not control training. At test time a small trigger pasted on *non-victim* pixels should make
the model label every pixel of the victim class (e.g. car) as the target class (e.g. road),
while all other pixels stay correct.

Poisoning one training image (label maps ``[H, W]`` of class ids, 255 = ignore):

1. selection: only images that contain the victim class are poisoned;
2. label rewriting: every victim pixel is relabelled as the target class;
3. trigger placement, by method:
   - ``"baseline"``: the trigger's whole footprint lies inside a single non-victim class
     region, at least ``margin`` pixels from the image border, at a random valid position;
   - ``"nni"`` (nearest-neighbour injection): as baseline, and the trigger centre's distance
     to the nearest victim pixel lies in ``nni_band = (L, U)``;
   - ``"prl"`` (pixel random labelling): baseline placement, and ``prl_pixels`` random
     labelled non-victim pixels are relabelled with classes drawn uniformly from the classes
     present in the (rewritten) label map, so the model must look beyond a pixel's own
     neighbourhood, i.e. at the context that includes a distant trigger.

Distances are Euclidean, in pixels, from the trigger centre (``top + size // 2``,
``left + size // 2``) to the nearest victim pixel. Images are float ``[3, H, W]`` in [0, 1].
A position request that no placement satisfies raises :class:`NoTriggerPositionError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

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


@dataclass(frozen=True)
class IBAConfig:
    """Settings of one IBA poisoning.

    Attributes:
        method: ``"baseline"``, ``"nni"`` or ``"prl"``.
        victim, target: class ids (paper's Cityscapes setting: car -> road).
        trigger_size: side of the square trigger in pixels (paper: ~0.6 % of the image area).
        margin: minimum distance in pixels between the trigger and the image border.
        nni_band: ``(L, U)`` allowed distance of the trigger centre to the victim (NNI only).
        prl_pixels: number of randomly relabelled pixels per poisoned label map (PRL only).
        ignore_index: label of unlabelled pixels (never covered by the trigger).
    """

    method: str
    victim: int
    target: int
    trigger_size: int = 8
    margin: int = 4
    nni_band: tuple[float, float] = (5.0, 15.0)
    prl_pixels: int = 500
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
    if not 0 <= low <= high:
        raise ValueError(f"a distance band (L, U) needs 0 <= L <= U, got {band}")


def _check_label(label: torch.Tensor) -> None:
    if label.ndim != 2:
        raise ValueError(f"expected one label map [H, W], got shape {tuple(label.shape)}")


def iba_trigger(size: int = 8, seed: int = 0) -> torch.Tensor:
    """A fixed, high-contrast square trigger ``[3, size, size]`` in [0, 1].

    A checkerboard of 2x2-pixel cells in saturated colours drawn once from ``seed`` (the
    paper pastes a small Hello Kitty picture; any conspicuous fixed pattern plays that role).
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
    """Exact Euclidean distance ``[H, W]`` (pixels) from every pixel to the nearest victim pixel.

    Zero on victim pixels; ``inf`` everywhere when the map holds no victim pixel. Computed
    separably: squared distances along each row first, then a minimum over rows
    (``d(y, x)^2 = min_y' (y - y')^2 + min_x' {(x - x')^2 : victim at (y', x')}``).
    """
    _check_label(label)
    is_victim = label == victim
    h, w = label.shape
    if not is_victim.any():
        return torch.full((h, w), float("inf"))
    ys, xs = torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64)
    along_x = (xs[None, :, None] - xs[None, None, :]) ** 2  # [1, x, x']
    rows = torch.where(is_victim[:, None, :], along_x, torch.inf).amin(2)  # [y', x]
    along_y = (ys[:, None, None] - ys[None, :, None]) ** 2  # [y, y', 1]
    return (along_y + rows[None]).amin(1).sqrt().float()


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
    ``y - size // 2 + size - 1``, likewise for columns) lies inside the image at least
    ``margin`` pixels from every border, covers pixels of one single class that is neither the
    victim nor ``ignore_index``, and, when ``band = (L, U)`` is given, the centre's distance to
    the nearest victim pixel lies in ``[L, U]``.
    """
    _check_label(label)
    h, w = label.shape
    valid = torch.zeros(h, w, dtype=torch.bool)
    span = (h - 2 * margin - size + 1, w - 2 * margin - size + 1)  # top-left positions that fit
    if min(span) < 1:
        return valid
    inner = label[margin : h - margin, margin : w - margin]
    classes = inner.unique()
    classes = classes[(classes != victim) & (classes != ignore_index)]
    masks = (inner[None] == classes[:, None, None]).float()  # [C, h', w'] one map per class
    tops = (
        (F.avg_pool2d(masks[:, None], size, stride=1)[:, 0] > 1 - 1e-6).any(0)
        if len(classes)
        else torch.zeros(span, dtype=torch.bool)
    )
    half = size // 2
    valid[margin + half : margin + half + span[0], margin + half : margin + half + span[1]] = tops
    if band is not None:
        _check_band(band)
        dist = victim_distance(label, victim)
        valid &= (dist >= band[0]) & (dist <= band[1])
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
    label: torch.Tensor,
    num_pixels: int,
    *,
    victim: int,
    target: int,
    ignore_index: int = 255,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """PRL: relabel ``num_pixels`` random labelled non-victim pixels, then rewrite victim -> target.

    Each chosen pixel gets a class drawn uniformly from the classes present in the rewritten
    map (victim counted as target; ignore excluded). Victim pixels
    are never chosen, so they all end up as ``target``.
    """
    _check_label(label)
    rewritten = rewrite_victim(label, victim, target)
    candidates = torch.nonzero(((label != victim) & (label != ignore_index)).flatten()).flatten()
    if num_pixels > len(candidates):
        raise ValueError(
            f"cannot relabel {num_pixels} pixels: only {len(candidates)} labelled non-victim pixels"
        )
    classes = rewritten[rewritten != ignore_index].unique()
    picked = candidates[torch.randperm(len(candidates), generator=generator)[:num_pixels]]
    flat = rewritten.flatten().clone()
    flat[picked] = classes[torch.randint(len(classes), (num_pixels,), generator=generator)]
    return flat.reshape(label.shape)


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
):
    """Poison ``images[indices]`` / ``labels[indices]`` with IBA; the other samples stay clean.

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
    images, labels = images.clone(), labels.clone()
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
        if config.method == "prl":
            labels[i] = random_pixel_labels(
                labels[i],
                config.prl_pixels,
                victim=config.victim,
                target=config.target,
                ignore_index=config.ignore_index,
                generator=generator,
            )
        else:
            labels[i] = rewrite_victim(labels[i], config.victim, config.target)
        centres.append(centre)
    return images, labels, torch.tensor(centres, dtype=torch.long).reshape(-1, 2)


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
) -> list[TriggeredSet]:
    """Test-time triggering: for each band, paste ``trigger`` at a distance in that band from the
    victim.

    Placement follows the training rule (one non-victim class region, ``margin`` from the
    border); a band of ``None`` allows any distance. Images without a valid position for a band
    are left out of that band's set. Each image's placement map and distance map are computed
    once and shared by all bands.

    Args:
        images: ``[N, 3, H, W]`` in [0, 1]. labels: ``[N, H, W]``. trigger: ``[3, s, s]``.
        bands: distance bands ``(L, U)`` in pixels, or ``None``.

    Returns one :class:`TriggeredSet` per band.
    """
    for band in bands:
        if band is not None:
            _check_band(band)
    size = trigger.shape[-1]
    found: list[list[tuple[int, tuple[int, int], float]]] = [[] for _ in bands]
    for i, label in enumerate(labels):
        anywhere = trigger_centres(
            label, size=size, victim=victim, margin=margin, ignore_index=ignore_index
        )
        dist = victim_distance(label, victim)
        for slot, band in enumerate(bands):
            valid = anywhere if band is None else anywhere & (dist >= band[0]) & (dist <= band[1])
            if valid.any():
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
