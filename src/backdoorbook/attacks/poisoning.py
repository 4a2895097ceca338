"""Poison-only backdoor data poisoning: add a trigger to a random fraction of a training set.

The attacker of BadNets (arXiv 1708.06733), Blended (arXiv 1712.05526) and the poison-only
WaNet variant (arXiv 2102.10369) controls only training data: they pick ``rate`` of the
training samples, add the trigger and relabel them to ``target`` (dirty label). In the
clean-label setting (SIG, arXiv 1902.11237) they poison only samples of the target class and
keep every label. Training then proceeds as usual on the returned set.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch

from . import triggers

Trigger = Callable[[torch.Tensor], torch.Tensor]

#: Trigger names understood by :func:`build_trigger`.
TRIGGER_NAMES = ("badnets", "blended", "wanet", "sig")


def build_trigger(
    name: str, image_size: int = 32, channels: int = 3, seed: int = 0, **overrides
) -> Trigger:
    """A ready-to-apply trigger ``name`` (one of :data:`TRIGGER_NAMES`).

    Defaults: ``badnets``: 3×3 checkerboard, bottom-right, 1 px margin; ``blended``: seeded
    colour-noise pattern, alpha 0.2; ``wanet``: k = 4 control grid, strength 0.5; ``sig``:
    delta 20/255, 6 periods. ``overrides`` replace any keyword of the underlying function (e.g.
    ``strength=1.0``), and three choose a random ingredient: ``pattern="random"`` gives
    ``badnets`` a :func:`~.triggers.random_patch` of its ``size``; ``pattern="grey"`` gives
    ``blended`` a :func:`~.triggers.grey_blend_pattern`; ``k`` sets the WaNet control grid.
    ``seed`` fixes the random pattern / warp field, so train and test triggers match. ZIP's
    victims use ``pattern="random", margin=3``; ``pattern="grey"``; ``k=256`` (see
    :mod:`backdoorbook.recipes.zip_victims`).
    """
    if name == "badnets":
        settings = {"size": 3, "margin": 1, **overrides}
        kind = settings.pop("pattern", "checkerboard")
        if kind == "random":
            settings["patch"] = triggers.random_patch(settings["size"], channels, seed=seed)
        elif kind != "checkerboard":
            raise ValueError(f"badnets pattern must be 'checkerboard' or 'random', got {kind!r}")
        return partial(triggers.badnets, **settings)
    if name == "blended":
        settings = {"alpha": 0.2, **overrides}
        kind = settings.pop("pattern", "colour")
        if kind == "grey":
            pattern = triggers.grey_blend_pattern(image_size, seed=seed)
        elif kind == "colour":
            pattern = triggers.blend_pattern((channels, image_size, image_size), seed=seed)
        else:
            raise ValueError(f"blended pattern must be 'colour' or 'grey', got {kind!r}")
        return partial(triggers.blended, pattern=pattern, **settings)
    if name == "wanet":
        settings = {"strength": 0.5, **overrides}
        field = triggers.wanet_field(image_size, k=settings.pop("k", 4), seed=seed)
        return partial(triggers.wanet, field=field, **settings)
    if name == "sig":
        return partial(triggers.sig, **{"delta": 20 / 255, "frequency": 6, **overrides})
    raise ValueError(f"unknown trigger {name!r}; choose one of {', '.join(TRIGGER_NAMES)}")


def trigger_fingerprint(trigger: Trigger, image_size: int = 32) -> str:
    """sha256 of ``trigger`` applied to a fixed random probe ``[2, 3, S, S]``, on the 8-bit grid.

    A victim records it when it is poisoned, so a loader can refuse a trigger function that has
    changed since (rounding to 8 bits keeps the hash stable across CPUs' last-bit differences).
    """
    probe = torch.rand(2, 3, image_size, image_size, generator=torch.Generator().manual_seed(0))
    levels = (trigger(probe) * 255).round().to(torch.uint8)
    return hashlib.sha256(levels.numpy().tobytes()).hexdigest()


@dataclass(frozen=True)
class PoisonedSet:
    """A training set after poisoning: ``images`` ``[N, C, H, W]`` in [0, 1], ``labels`` ``[N]``,
    and the sorted ``indices`` (LongTensor) of the samples that carry the trigger."""

    images: torch.Tensor
    labels: torch.Tensor
    indices: torch.Tensor

    @property
    def rate(self) -> float:
        """Fraction of the set that is poisoned."""
        return len(self.indices) / len(self.labels)


def poison_classification_set(
    images: torch.Tensor,
    labels: torch.Tensor,
    trigger: Trigger,
    *,
    rate: float,
    target: int,
    seed: int = 0,
    clean_label: bool = False,
    include_target: bool = False,
    batch_size: int = 4096,
) -> PoisonedSet:
    """Apply ``trigger`` to ``round(rate * N)`` randomly chosen samples and relabel them ``target``.

    Args:
        images: float ``[N, C, H, W]`` in [0, 1]; labels: long ``[N]``. Neither is modified.
        trigger: a function of a batch of images, e.g.
            ``functools.partial(triggers.badnets, size=3)``.
        rate: poisoned fraction of the whole set, in (0, 1].
        target: the attacker's class; dirty-label poisoning draws only non-target samples,
            unless ``include_target``: then it draws from the whole set, as BackdoorBox (the
            attack code of ZIP's victims) does, so some drawn samples already carry the target.
            BackdoorBox draws ``int(rate * N)`` samples; the two counts differ by at most one.
        seed: seeds the choice of samples. clean_label: poison target-class samples, keep labels.
    """
    if images.ndim != 4 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(
            "need images [N, C, H, W] and labels [N], "
            f"got {tuple(images.shape)}, {tuple(labels.shape)}"
        )
    if not 0 < rate <= 1:
        raise ValueError(f"rate must lie in (0, 1], got {rate}")
    if not 0 <= target <= int(labels.max()):
        raise ValueError(f"target {target} is not one of the labels 0..{int(labels.max())}")
    if clean_label and include_target:
        raise ValueError("include_target applies to dirty-label poisoning only")
    if clean_label:
        pool = torch.nonzero(labels == target).flatten()
    elif include_target:
        pool = torch.arange(len(labels))
    else:
        pool = torch.nonzero(labels != target).flatten()
    count = round(rate * len(labels))
    if count > len(pool):
        raise ValueError(f"cannot poison {count} samples: only {len(pool)} are eligible")
    chosen = (
        pool[torch.randperm(len(pool), generator=torch.Generator().manual_seed(seed))[:count]]
        .sort()
        .values
    )
    poisoned, new_labels = images.clone(), labels.clone()
    for start in range(0, count, batch_size):
        index = chosen[start : start + batch_size]
        poisoned[index] = trigger(images[index])
    new_labels[chosen] = target
    return PoisonedSet(poisoned, new_labels, chosen)
