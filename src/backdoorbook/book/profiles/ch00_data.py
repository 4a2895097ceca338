"""Profiles of chapter 0 (the data): the gallery and the CIFAR-10 ResNet evaluation."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Profile:
    """Chapter 0's settings.

    Attributes:
        gallery_images: images shown per dataset in the gallery.
        resnet_test_images: CIFAR-10 test images the pretrained ResNets are scored on
            (``None``: all 10,000).
        resnet_train_images: training images (evenly spaced) scored as a diagnostic.
        batch_size: evaluation batch size.
        exercise_images: test images the first exercise's solution re-encodes and scores.
        threads: torch threads (``None``: every core).
    """

    gallery_images: int
    resnet_test_images: int | None
    resnet_train_images: int
    batch_size: int
    exercise_images: int
    threads: int | None


CI = Profile(
    gallery_images=8,  # one row of the gallery per dataset
    resnet_test_images=None,  # the whole test split: the reported accuracies are over all of it
    resnet_train_images=5000,  # enough for a diagnostic to 1 point, a tenth of the split's cost
    batch_size=500,  # fits every ResNet's activations in a few hundred MB
    exercise_images=2000,  # a second encoding's cost to about ±1 point, in seconds
    threads=None,  # inference only, on every core
)
PAPER = replace(
    CI,
    gallery_images=16,  # two rows
    resnet_train_images=50000,  # the whole training split
    batch_size=1000,  # a GPU batch
    exercise_images=10000,  # the whole test split
)
SMOKE = replace(
    PAPER,
    gallery_images=2,  # one image per row: the paper path at toy sizes
    resnet_test_images=200,
    resnet_train_images=200,
    batch_size=100,
    exercise_images=100,
)
PROFILES = {"ci": CI, "paper": PAPER, "smoke": SMOKE}
