"""Per-chapter run profiles: one module per chapter, each a frozen dataclass with instances.

- ``ci``: the default; this 2-core CPU, a few minutes per chapter (the book built in CI);
- ``paper``: closer to the paper's scale, meant for a GPU, written as overrides of ``ci``.

Notebooks never hard-code sizes: :class:`~backdoorbook.book.chapter.ChapterRun` loads
``get_profile(chapter, profile)`` with the ``profile`` parameter papermill injects. Fields
marked with :data:`RECIPE` define the models a chapter may load as shipped artifacts instead of
training them; :func:`recipe_of` collects them, and the artifact loaders compare them with the
recipe stored in the artifact's provenance. Artifact names live only in the profiles.

The profile modules hold data only and are imported on first use, so the recipe that makes a
chapter's artifacts can read that chapter's settings without loading the other chapters.
"""

from __future__ import annotations

import importlib
from dataclasses import asdict, fields, is_dataclass
from typing import TYPE_CHECKING, Literal, overload

from .recipe_fields import RECIPE

if TYPE_CHECKING:
    from . import (
        ch00_data,
        ch01_badsam,
        ch02_zip,
        ch03_iba,
        ch04_clip_defenses,
        ch05_flba,
        ch06_transferability,
    )

__all__ = [
    "RECIPE",
    "CHAPTERS",
    "ProfileError",
    "get_profile",
    "profile_names",
    "profile_as_dict",
    "recipe_of",
]

#: chapter stem -> the module holding its profiles, in chapter order.
CHAPTERS = {
    "00_data": "ch00_data",
    "01_badsam": "ch01_badsam",
    "02_zip": "ch02_zip",
    "03_iba": "ch03_iba",
    "04_clip_defenses": "ch04_clip_defenses",
    "05_flba": "ch05_flba",
    "06_transferability": "ch06_transferability",
}


class ProfileError(ValueError):
    """An unknown chapter or profile name."""


@overload
def get_profile(chapter: Literal["00_data"], name: str = "ci") -> ch00_data.Profile: ...
@overload
def get_profile(chapter: Literal["01_badsam"], name: str = "ci") -> ch01_badsam.Profile: ...
@overload
def get_profile(chapter: Literal["02_zip"], name: str = "ci") -> ch02_zip.Profile: ...
@overload
def get_profile(chapter: Literal["03_iba"], name: str = "ci") -> ch03_iba.Profile: ...
@overload
def get_profile(
    chapter: Literal["04_clip_defenses"], name: str = "ci"
) -> ch04_clip_defenses.Profile: ...
@overload
def get_profile(chapter: Literal["05_flba"], name: str = "ci") -> ch05_flba.Profile: ...
@overload
def get_profile(
    chapter: Literal["06_transferability"], name: str = "ci"
) -> ch06_transferability.Profile: ...
def get_profile(chapter: str, name: str = "ci"):
    """Return the profile ``name`` of ``chapter``; unknown names raise :class:`ProfileError`."""
    profiles = profile_names(chapter)
    if name not in profiles:
        raise ProfileError(
            f"unknown profile {name!r} for chapter {chapter!r}; "
            f"valid profiles: {', '.join(sorted(profiles))}"
        )
    return profiles[name]


def profile_names(chapter: str) -> dict[str, object]:
    """``{profile name: profile}`` of ``chapter``; an unknown chapter raises
    :class:`ProfileError`."""
    if chapter not in CHAPTERS:
        raise ProfileError(
            f"unknown chapter {chapter!r}; chapters with profiles: {', '.join(CHAPTERS)}"
        )
    return importlib.import_module(f"{__name__}.{CHAPTERS[chapter]}").PROFILES


def profile_as_dict(profile) -> dict:
    """The profile's fields, for the results record."""
    return asdict(profile)


def _plain(value):
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if is_dataclass(value):
        return {k: _plain(v) for k, v in asdict(value).items()}
    return value


def recipe_of(profile) -> dict:
    """The :data:`RECIPE` fields of ``profile`` as JSON-ready values (tuples become lists)."""
    return {
        f.name: _plain(getattr(profile, f.name))
        for f in fields(profile)
        if f.metadata.get("recipe")
    }
