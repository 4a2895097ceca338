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
        surrogates: depths of the pretrained ResNets used as single surrogates.
        ensemble: depths of the ResNets whose logits the ensemble surrogate averages.
        eps: L∞ budgets in units of 1/255.
        steps: attack iterations (FGSM: one).
        vmi_samples: VMI-FGSM neighbours per iteration (paper: 20).
        si_scales: SI-FGSM scale copies (paper: 5).
        admix_mixes, admix_scales: Admix's admixed images and scale copies (paper: 3 and 5).
        batch_size: evaluation batch size. grid_images: images per adversarial-example grid.
        threads: torch threads (``None``: every core).
    """

    target_artifacts: tuple[tuple[str, str], ...]
    control_artifact: str
    pool: int
    images: int
    surrogates: tuple[int, ...]
    ensemble: tuple[int, ...]
    eps: tuple[int, ...]
    steps: int
    vmi_samples: int
    si_scales: int
    admix_mixes: int
    admix_scales: int
    batch_size: int
    grid_images: int
    threads: int | None


CI = Profile(
    target_artifacts=(
        ("VGG", "cifar10_vgg"),
        ("MobileNetV2", "cifar10_mobilenetv2"),
        ("ViT", "cifar10_vit"),
    ),
    # made by recipes.cifar_targets; reported, not attacked
    control_artifact="cifar10_resnet20_control",
    pool=1000,  # enough to find 64 images that all seven models classify correctly
    images=64,  # what ten iterations of twelve methods from three surrogates allow in the budget
    surrogates=(20, 32),  # two depths of the ResNet family
    ensemble=(20, 32, 44),  # three ResNets, one of them never a single surrogate here
    eps=(8, 16),  # the usual CIFAR and ImageNet budgets
    steps=10,  # the usual ten iterations
    vmi_samples=3,  # cut from the paper's 20 for time
    si_scales=3,  # cut from the paper's 5 for time
    admix_mixes=2,  # cut from the paper's 3 for time
    admix_scales=2,  # cut from the paper's 5 for time
    batch_size=500,
    grid_images=6,
    threads=1,  # one thread is several times faster than two on the shared 2-core machine
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
    threads=None,
)
PROFILES = {"ci": CI, "paper": PAPER}
