"""Per-chapter run profiles: one module per chapter, each a frozen dataclass with instances.

- ``ci``: the default; this 2-core CPU, a few minutes per chapter (the book built in CI);
- ``paper``: closer to the paper's scale, meant for a GPU, written as overrides of ``ci``.

Notebooks never hard-code sizes: :class:`~backdoorbook.book.chapter.ChapterRun` loads
``get_profile(chapter, profile)`` with the ``profile`` parameter papermill injects. Fields
marked with :data:`RECIPE` define the models a chapter may load as shipped artifacts instead of
training them; :func:`recipe_of` collects them, and the artifact loaders compare them with the
recipe stored in the artifact's provenance. Artifact names live only in the profiles.

The profile modules hold data only, so the recipes that make a chapter's artifacts can read
the chapter's settings from them.
"""

from __future__ import annotations

from dataclasses import asdict, fields, is_dataclass
from typing import Literal, overload

from . import ch00_data, ch01_badsam, ch02_zip, ch03_iba, ch04_clip_defenses, ch05_flba, ch06_transferability
from .recipe_fields import RECIPE

__all__ = ["RECIPE", "PROFILES", "ProfileError", "get_profile", "profile_as_dict", "recipe_of"]

#: chapter stem -> {profile name -> profile}, in chapter order.
PROFILES: dict[str, dict[str, object]] = {
    "00_data": ch00_data.PROFILES,
    "01_badsam": ch01_badsam.PROFILES,
    "02_zip": ch02_zip.PROFILES,
    "03_iba": ch03_iba.PROFILES,
    "04_clip_defenses": ch04_clip_defenses.PROFILES,
    "05_flba": ch05_flba.PROFILES,
    "06_transferability": ch06_transferability.PROFILES,
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
def get_profile(chapter: Literal["04_clip_defenses"], name: str = "ci") -> ch04_clip_defenses.Profile: ...
@overload
def get_profile(chapter: Literal["05_flba"], name: str = "ci") -> ch05_flba.Profile: ...
@overload
def get_profile(chapter: Literal["06_transferability"], name: str = "ci") -> ch06_transferability.Profile: ...
def get_profile(chapter: str, name: str = "ci"):
    """Return the profile ``name`` of ``chapter``; unknown names raise :class:`ProfileError`."""
    if chapter not in PROFILES:
        raise ProfileError(f"unknown chapter {chapter!r}; chapters with profiles: {', '.join(PROFILES)}")
    profiles = PROFILES[chapter]
    if name not in profiles:
        raise ProfileError(
            f"unknown profile {name!r} for chapter {chapter!r}; valid profiles: {', '.join(sorted(profiles))}")
    return profiles[name]


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
    return {f.name: _plain(getattr(profile, f.name)) for f in fields(profile) if f.metadata.get("recipe")}
