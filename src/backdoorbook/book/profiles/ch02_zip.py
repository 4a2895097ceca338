"""Profiles of chapter 2 (ZIP purification on CIFAR-10 and GTSRB)."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Profile:
    """Chapter 2's settings.

    Attributes:
        prior_artifact: the shipped DDPM prior.
        victims: victim artifacts ``zip_victim_<dataset>_<attack>`` to evaluate; the only place
            their names are written (:mod:`backdoorbook.recipes.zip_victims` makes each from
            the recipe of its dataset and attack).
        n_images: test images per dataset (non-target classes) scored under every defense;
            ZIP purifies each of them clean and triggered.
        n_sweep: triggered CIFAR-10 BadNets images purified per point of the s and λ sweeps.
        scale: ZIP's downsampling factor s; lam: the λ of the blend; steps: sampling steps.
        sweep_scales, sweep_lams: the values of s (at ``lam``) and λ (at ``scale``) swept.
        batch_size: purification batch size. grid_images: images per row of the figure grids.
        sample_images: unconditional samples drawn from the prior for the sample grid.
        throughput_images: images purified by the timed throughput measurement.
        threads: torch threads (``None``: every core).
    """

    prior_artifact: str
    victims: tuple[str, ...]
    n_images: int
    n_sweep: int
    scale: int
    lam: float
    steps: int
    sweep_scales: tuple[int, ...]
    sweep_lams: tuple[float, ...]
    batch_size: int
    grid_images: int
    sample_images: int
    throughput_images: int
    threads: int | None


CI = Profile(
    prior_artifact="ddpm_cifar10",  # the project's 32 px DDPM, trained on clean CIFAR-10
    victims=(
        "zip_victim_cifar10_badnets",
        "zip_victim_cifar10_blended",
        "zip_victim_cifar10_wanet",
        "zip_victim_gtsrb_badnets",
    ),  # ZIP's three CIFAR-10 attacks and BadNets on GTSRB
    n_images=64,  # one purification batch per dataset and victim
    n_sweep=48,  # smaller: the sweeps purify five settings
    # ZIP's default --deg_scale (their README's own-model example uses 4); a 16x16 observation
    # of a 32 px image keeps the object's shape
    scale=2,
    lam=10.0,  # ZIP's default λ
    steps=20,  # ZIP's 20 sampling steps (t = 950, 900, ..., 0)
    sweep_scales=(2, 4),  # s = 8 leaves a 4x4 observation
    sweep_lams=(1.0, 10.0, 100.0),  # the README demo's 1, the default 10, and a large value
    batch_size=64,  # the whole n_images in one batch
    grid_images=6,  # images per row of the figures
    sample_images=16,  # two rows of unconditional samples
    throughput_images=32,  # a short timed purification
    # on the shared 2-core machine one thread ran the UNet about 4x faster than two under load
    threads=1,
)
PAPER = replace(
    CI,
    n_images=2000,
    n_sweep=1000,
    sweep_scales=(2, 4, 8),
    sweep_lams=(0.3, 1.0, 3.0, 10.0, 30.0, 100.0),
    batch_size=250,
    grid_images=8,
    sample_images=64,
    throughput_images=1000,
    threads=None,
)
PROFILES = {"ci": CI, "paper": PAPER}
