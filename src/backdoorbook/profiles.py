"""Per-chapter run profiles.

Each chapter has one frozen dataclass of sizes and settings, with two instances:

- ``ci``: the default; CPU with 2 cores, a few minutes per chapter (the book built in CI);
- ``paper``: closer to the paper's scale, meant for a GPU.

Notebooks never hard-code sizes: they call ``get_profile(chapter, profile)`` with the
``profile`` parameter papermill injects. Chapter issues add their dataclass and an entry in
:data:`PROFILES`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


class ProfileError(ValueError):
    """An unknown chapter or profile name."""


@dataclass(frozen=True)
class DataProfile:
    """Chapter 0 (the data): gallery size and the CIFAR-10 ResNet evaluation.

    Attributes:
        gallery_images: images shown per dataset in the gallery.
        resnet_test_images: CIFAR-10 test images the pretrained ResNets are scored on
            (``None``: the whole test split, 10,000 images).
        resnet_train_images: training images (evenly spaced) scored as a diagnostic.
        batch_size: evaluation batch size.
    """

    gallery_images: int
    resnet_test_images: int | None
    resnet_train_images: int
    batch_size: int


PROFILES: dict[str, dict[str, object]] = {
    "00_data": {
        "ci": DataProfile(gallery_images=8, resnet_test_images=None, resnet_train_images=5000, batch_size=500),
        "paper": DataProfile(gallery_images=16, resnet_test_images=None, resnet_train_images=50000, batch_size=1000),
    },
}


def get_profile(chapter: str, name: str = "ci"):
    """Return the profile ``name`` of ``chapter``; unknown names raise :class:`ProfileError`."""
    if chapter not in PROFILES:
        raise ProfileError(f"unknown chapter {chapter!r}; chapters with profiles: {', '.join(sorted(PROFILES))}")
    profiles = PROFILES[chapter]
    if name not in profiles:
        raise ProfileError(
            f"unknown profile {name!r} for chapter {chapter!r}; valid profiles: {', '.join(sorted(profiles))}")
    return profiles[name]


def profile_as_dict(profile) -> dict:
    """The profile's fields, for the results record."""
    return asdict(profile)
