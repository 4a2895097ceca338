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
        n_images: test images per dataset, of classes no victim of that dataset targets, scored
            without defense and under the transformations (no prior: cheap).
        n_zip: the first ``n_zip`` of them, which ZIP also purifies, clean and triggered.
        n_sweep: triggered CIFAR-10 BadNets images purified per point of the s and λ sweeps
            (the first ``n_sweep`` of the ``n_zip``).
        n_exercise: images purified by the exercises' solutions (the first of the ``n_sweep``).
        scale: ZIP's downsampling factor s; lam: the λ of the blend; steps: sampling steps.
        sweep_scales, sweep_lams: the values of s (at ``lam``) and λ (at ``scale``) swept.
        batch_size: purification batch size. grid_images: images per row of the figure grids.
        sample_images: unconditional samples drawn from the prior for the sample grid.
        threads: torch threads (``None``: every core).
    """

    prior_artifact: str
    victims: tuple[str, ...]
    n_images: int
    n_zip: int
    n_sweep: int
    n_exercise: int
    scale: int
    lam: float
    steps: int
    sweep_scales: tuple[int, ...]
    sweep_lams: tuple[float, ...]
    batch_size: int
    grid_images: int
    sample_images: int
    threads: int | None

    def __post_init__(self):
        sizes = (self.n_exercise, self.n_sweep, self.n_zip, self.n_images)
        if sizes[0] < 2 or list(sizes) != sorted(sizes):
            raise ValueError(
                "need 2 <= n_exercise <= n_sweep <= n_zip <= n_images (each reuses the first "
                f"test images of the next), got {sizes}"
            )


CI = Profile(
    prior_artifact="ddpm_cifar10",  # the project's 32 px DDPM, trained on clean CIFAR-10
    victims=(
        "zip_victim_cifar10_badnets",
        "zip_victim_cifar10_blended",
        "zip_victim_cifar10_wanet",
        "zip_victim_gtsrb_badnets",
    ),  # ZIP's three CIFAR-10 attacks and BadNets on GTSRB
    # the claims on the undefended and transformed arms need no prior, so they get more images:
    # at 320 the difference between two victims' transform-only ASRs (about 40 % of the images
    # discordant) had a half-width of 7.2 points; 640 brings it near 5, for seconds of scoring
    n_images=640,
    # ZIP purifies 6 x n_zip images (two clean sets, four triggered) at about 10 images per CPU
    # second; at 320 every ZIP criterion's half-width was 5.3 points or less, in 3 CPU minutes
    n_zip=320,
    # the λ leakage criterion had a half-width of 6.6 points at 160 and 6.25 at 200; 224 brings
    # it near 5.9, at three extra settings x 224 images (the s = 2, λ = 10 point is the main
    # table's)
    n_sweep=224,
    n_exercise=48,  # the exercises' solutions: 5 x 48 images purified
    # ZIP's default --deg_scale (their README's own-model example uses 4); a 16x16 observation
    # of a 32 px image keeps the object's shape
    scale=2,
    lam=10.0,  # ZIP's default λ
    steps=20,  # ZIP's 20 sampling steps (t = 950, 900, ..., 0)
    sweep_scales=(2, 4),  # s = 8 leaves a 4x4 observation
    sweep_lams=(1.0, 10.0, 100.0),  # the README demo's 1, the default 10, and a large value
    # 5 batches of the 320; one thread purified about 10 images per CPU second at 64, 128 and
    # 256 alike, and 64 keeps the memory small
    batch_size=64,
    grid_images=6,  # images per row of the figures
    sample_images=16,  # two rows of unconditional samples
    # every core: on the quiet 2-core machine two threads purify 14.1 images/s against 7.5 on
    # one (bench/zip_throughput.py, batch 64); at one thread the chapter took 411 s, over its 6 min
    threads=None,
)
PAPER = replace(
    CI,
    n_images=4000,
    n_zip=2000,
    n_sweep=1000,
    n_exercise=500,
    sweep_scales=(2, 4, 8),
    sweep_lams=(0.3, 1.0, 3.0, 10.0, 30.0, 100.0),
    batch_size=250,
    grid_images=8,
    sample_images=64,
    threads=None,
)
#: The paper profile's code path (its sweeps and batch size) at toy sizes, to check in about half a
#: minute that the paper branch runs; on one thread, since two threads spent most of their time
#: waiting for each other on the shared 2-core machine (about 1 image per CPU second, not 10).
SMOKE = replace(
    PAPER,
    n_images=16,
    n_zip=8,
    n_sweep=4,
    n_exercise=2,
    grid_images=4,
    sample_images=4,
    threads=1,
)
PROFILES = {"ci": CI, "paper": PAPER, "smoke": SMOKE}
