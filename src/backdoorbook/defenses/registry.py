"""Registry of the CLIP backdoor defenses and the single factory :func:`create_defense` (timm
style).

Every defense fine-tunes a possibly poisoned CLIP-style model in place, from what the defender
holds (:class:`DefenseInputs`): a small set of clean pairs (CleanCLIP, TA-Cleaner, UBT's retain
set) and, for UBT, the pairs the model was trained on, poisoned ones included and unknown.
``create_defense(name, **settings)`` binds a defense's settings; calling the result with
``(model, inputs)`` runs it and returns what it found (UBT's :class:`~.ubt.UBTResult`), or ``None``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from ..data.captions import CaptionedImages
from .cleanclip import cleanclip
from .ta_cleaner import ta_cleaner
from .ubt import ubt


@dataclass(frozen=True)
class DefenseInputs:
    """The defender's data: ``clean`` pairs, and the ``training`` pairs (poisoned ones unknown)."""

    clean: CaptionedImages
    training: CaptionedImages


def _no_defense(model, inputs: DefenseInputs, **settings) -> None:
    """Leave the model as it is (the baseline row of every comparison)."""


def _cleanclip(model, inputs: DefenseInputs, **settings) -> None:
    cleanclip(model, inputs.clean.images, inputs.clean.captions, **settings)


def _ta_cleaner(model, inputs: DefenseInputs, **settings) -> None:
    ta_cleaner(model, inputs.clean.images, inputs.clean.captions, inputs.clean.classes, **settings)


def _ubt(model, inputs: DefenseInputs, **settings):
    return ubt(
        model,
        inputs.training.images,
        inputs.training.captions,
        inputs.clean.images,
        inputs.clean.captions,
        **settings,
    )


@dataclass(frozen=True)
class DefenseSpec:
    """A registered defense: the function that runs it and its display label."""

    run: Callable
    label: str


DEFENSES: dict[str, DefenseSpec] = {
    "none": DefenseSpec(_no_defense, "no defense"),
    "cleanclip": DefenseSpec(_cleanclip, "CleanCLIP"),
    "ta_cleaner": DefenseSpec(_ta_cleaner, "TA-Cleaner"),
    "ubt": DefenseSpec(_ubt, "UBT"),
}


def create_defense(name: str, **settings) -> Callable:
    """Defense ``name`` with ``settings`` bound (the keyword arguments of its function, e.g.
    ``epochs``, ``lr``, ``inmodal_weight``); call it as ``defense(model, inputs)``.

    Unknown names raise ``ValueError`` listing the registry.
    """
    if name not in DEFENSES:
        raise ValueError(f"unknown defense {name!r}; registered defenses: {', '.join(DEFENSES)}")
    return partial(DEFENSES[name].run, **settings)
