"""Profiles of chapter 3 (IBA on CamVid).

The attack's sizes follow the authors' Cityscapes configuration at its working resolution,
1024x512 (Maxproto/IBA, config/cityscapes/cityscapes_deeplabv3.yaml: a 55 px trigger, trigger
centres at least 200 px from the border, a test-time NNI band (0, 60] px, 100,000 PRL pixels
per label map), scaled to ours: lengths by the square root of the pixel ratio (0.1435 at
120x90, 0.2871 at 240x180), counts by the ratio itself (0.0206, 0.0824).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from .recipe_fields import RECIPE


@dataclass(frozen=True)
class Profile:
    """Chapter 3's settings. Fields marked :data:`RECIPE` define the compared models.

    Attributes:
        downsample: integer reduction of the 240x180 CamVid mirror (2: 120x90).
        width: first-stage channels of the small DeepLab.
        clean_artifact: the shipped clean pre-trained model (``None``: train it in the chapter).
        compared_artifacts: name pattern of the shipped compared models (``{model}``: ``control``
            or ``<method>_<percent>pct``; ``{width}``, ``{downsample}``: those fields).
        clean_epochs, clean_lr: the clean pre-training (AdamW, cosine schedule).
        poison_epochs, poison_lr, poison_batch_size: training of every compared model (clean
            control and attacked) on its training set, starting from the clean pre-trained weights.
        ship_compared_models: load the compared models from artifacts trained with exactly these
            settings by :mod:`backdoorbook.recipes.iba_models` (``False``: train them in the
            chapter).
        batch_size: batch size of the clean pre-training.
        poison_rates: fractions of the training set that are poisoned.
        trigger_size: side of the square trigger (pixels, odd).
        margin: minimum distance of the trigger centre to the image border (pixels).
        nni_band: NNI's band (L, U] for the trigger centre's Chebyshev distance to the victim
            (pixels).
        prl_pixels: positions relabelled by PRL in every training label map.
        min_victim_pixels: images with fewer victim pixels are neither poisoned nor tested for ASR.
        test_splits: the held-out CamVid splits every model is scored on (none is trained on).
        test_placements: random trigger positions per test image (and per distance band); an
            image's pixel counts are summed over them.
        distance_bands: test-time bands (L, U] of the Chebyshev distance for the
            ASR-against-distance sweep (pixels); the sweep keeps the images with a trigger
            position in every band.
        threads: torch threads (``None``: every core).
    """

    downsample: int = field(metadata=RECIPE)
    width: int = field(metadata=RECIPE)
    clean_artifact: str | None = field(metadata=RECIPE)
    compared_artifacts: str
    clean_epochs: int
    clean_lr: float
    poison_epochs: int = field(metadata=RECIPE)
    poison_lr: float = field(metadata=RECIPE)
    poison_batch_size: int = field(metadata=RECIPE)
    ship_compared_models: bool
    batch_size: int
    poison_rates: tuple[float, ...]
    trigger_size: int = field(metadata=RECIPE)
    margin: int = field(metadata=RECIPE)
    nni_band: tuple[float, float] = field(metadata=RECIPE)
    prl_pixels: int = field(metadata=RECIPE)
    min_victim_pixels: int = field(metadata=RECIPE)
    test_splits: tuple[str, ...]
    test_placements: int
    distance_bands: tuple[tuple[float, float], ...]
    threads: int | None

    def compared_artifact(self, method: str, rate: float) -> str:
        """Artifact name of a compared model, e.g. ``iba_camvid_nni_10pct_w16_ds2``; ``"clean"`` is
        the control."""
        model = "control" if method == "clean" else f"{method}_{round(100 * rate)}pct"
        return self.compared_artifacts.format(
            model=model, width=self.width, downsample=self.downsample
        )


CI = Profile(
    downsample=2,  # 120x90: the network trains in minutes per epoch on the CPU
    width=16,  # the smallest DeepLab whose image-pooling branch still sees context
    clean_artifact="iba_camvid_clean_w16_120x90",  # pre-trained once by recipes.iba_clean
    # one shipped model per (method, rate) and the control
    compared_artifacts="iba_camvid_{model}_w{width}_ds{downsample}",
    clean_epochs=40,
    clean_lr=3e-3,
    poison_epochs=60,  # 3 epochs taught car-road confusion only; 60 planted the trigger
    poison_lr=1e-3,
    poison_batch_size=8,  # 2,760 steps over 60 epochs of 367 images
    ship_compared_models=True,  # seven 60-epoch trainings exceed a CPU chapter's minutes
    batch_size=32,
    poison_rates=(0.1, 0.2),  # the reviewers' 10 % and a higher rate
    trigger_size=7,  # 55 x 0.1435 = 7.9: the nearest odd side (0.45 % of the image; theirs 0.58 %)
    margin=29,  # 200 x 0.1435: centres in rows 29-60 and columns 29-90
    nni_band=(0.0, 9.0),  # their test band (0, 60] x 0.1435; the code has no training band
    prl_pixels=2060,  # 100,000 x 0.0206: 19 % of the pixels, as theirs
    min_victim_pixels=30,  # a car of at least 30 pixels
    # the paper scores its val split; CamVid's val and test are both held out: 245 car images
    test_splits=("test", "val"),
    test_placements=4,  # averages out where in a band the trigger lands (inference is cheap)
    # near to far: the margin keeps centres within ~25 px of most cars (median farthest: 26 px);
    # 182 of the 245 car images have a position in all four bands (19 had one in (32, 48] too)
    distance_bands=((0, 8), (8, 16), (16, 24), (24, 32)),
    threads=None,  # every core: convolutions parallelise well
)
PAPER = replace(
    CI,
    downsample=1,
    width=32,
    clean_artifact=None,
    clean_epochs=120,
    poison_epochs=100,
    ship_compared_models=False,
    batch_size=16,
    poison_rates=(0.05, 0.1, 0.2),
    trigger_size=15,  # 55 x 0.2871 = 15.8: the nearest odd side
    margin=57,  # 200 x 0.2871
    nni_band=(0.0, 17.0),  # 60 x 0.2871
    prl_pixels=8240,  # 100,000 x 0.0824
    min_victim_pixels=120,
    distance_bands=((0, 16), (16, 32), (32, 48), (48, 64)),  # 182 of 246 car images in all four
)
#: The ``paper`` code path (the clean network and every compared model trained in the chapter)
#: at toy sizes, so that it runs in about half a minute: its numbers mean nothing.
SMOKE = replace(
    PAPER,
    downsample=4,  # 60x45; lengths scale by 0.0718 and counts by 0.00515 from 1024x512
    width=8,
    clean_epochs=1,
    poison_epochs=1,
    poison_batch_size=32,
    batch_size=32,
    trigger_size=3,  # 55 x 0.0718 = 3.9: the nearest odd side
    margin=14,  # 200 x 0.0718
    nni_band=(0.0, 4.0),  # 60 x 0.0718 = 4.3
    prl_pixels=515,  # 100,000 x 0.00515
    min_victim_pixels=8,
    poison_rates=(0.1, 0.2),  # two rates take every branch that three take
    test_splits=("val",),  # 101 held-out images
    test_placements=2,
    distance_bands=((0, 4), (4, 8), (8, 12)),
)
PROFILES = {"ci": CI, "paper": PAPER, "smoke": SMOKE}
