"""Profiles of chapter 6 (transferability of adversarial examples on CIFAR-10)."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Profile:
    """Chapter 6's settings.

    Attributes:
        target_artifacts: display name -> artifact of the project-trained targets from other
            families.
        control_artifact: a ResNet-20 trained with the VGG target's recipe (a training-quality
            control).
        pool: test images screened for ones every model classifies correctly.
        images: attacked images (the first ``images`` of the pool that all models get right).
        surrogates: depths of the pretrained ResNets from which every method runs.
        ensemble: depths of the ResNets whose logits the ensemble surrogate averages.
        member_methods: methods run from each ensemble member that is not in ``surrogates``
            (the ensemble claim compares Ens-MI with MI-FGSM from every member alone).
        eps: L∞ budgets in units of 1/255.
        steps: attack iterations (FGSM: one).
        vmi_samples: VMI-FGSM neighbours per iteration (paper: 20).
        si_scales: SI-FGSM scale copies (paper: 5).
        admix_mixes, admix_scales: Admix's admixed images and scale copies (paper: 3 and 5).
        batch_size: evaluation batch size. grid_images: images per adversarial-example grid.
        exercise_images: attacked images the exercises' solutions use (the first of the set).
        threads: torch threads (``None``: every core).
    """

    target_artifacts: tuple[tuple[str, str], ...]
    control_artifact: str
    pool: int
    images: int
    surrogates: tuple[int, ...]
    ensemble: tuple[int, ...]
    member_methods: tuple[str, ...]
    eps: tuple[int, ...]
    steps: int
    vmi_samples: int
    si_scales: int
    admix_mixes: int
    admix_scales: int
    batch_size: int
    grid_images: int
    exercise_images: int
    threads: int | None


CI = Profile(
    target_artifacts=(
        ("VGG", "cifar10_vgg"),
        ("MobileNetV2", "cifar10_mobilenetv2"),
        ("ViT", "cifar10_vit"),
    ),
    # made by recipes.cifar_targets; reported, not attacked
    control_artifact="cifar10_resnet20_control",
    pool=1000,  # about 300 of them all seven models classify correctly (seed 0: 305)
    # paired 95 % half-widths of at most 2.9 points (seed 0), and the whole chapter in 303 s of
    # CPU time (user + sys, one thread), within its six minutes; time grows with n
    images=128,
    surrogates=(20, 32),  # two depths of the ResNet family
    ensemble=(20, 32, 44),  # three ResNets; ResNet-44 runs alone with member_methods only
    member_methods=("mifgsm",),  # what the ensemble claim compares with; every method would
    # cost 2.2 ResNet-20 runs per method and budget
    eps=(8, 16),  # the usual CIFAR and ImageNet budgets
    steps=10,  # the usual ten iterations
    vmi_samples=3,  # cut from the paper's 20 for time
    si_scales=3,  # cut from the paper's 5 for time
    admix_mixes=2,  # cut from the paper's 3 for time
    admix_scales=2,  # cut from the paper's 5 for time
    batch_size=500,
    grid_images=6,
    exercise_images=32,  # the solutions' four small sweeps: a few per cent of the chapter's time
    threads=None,  # every core: on the quiet machine the chapter took 244 s on two, 305 s on one
)
PAPER = replace(
    CI,
    pool=10000,
    images=1000,
    surrogates=(20, 32, 44, 56),
    vmi_samples=20,
    si_scales=5,
    admix_mixes=3,
    admix_scales=5,
    batch_size=1000,
    grid_images=8,
    exercise_images=200,
    threads=None,
)
#: The paper path (every ensemble member a full surrogate, the paper's sample counts) at toy sizes.
SMOKE = replace(
    PAPER,
    pool=200,  # about 60 images that every model gets right
    images=4,  # enough for the paired bootstrap to run
    steps=1,  # the iterations' count only scales the time
    batch_size=200,
    grid_images=4,
    exercise_images=4,
    threads=1,  # two threads on the shared 2-core machine take eight times the CPU time
)
PROFILES = {"ci": CI, "paper": PAPER, "smoke": SMOKE}
