"""Image augmentations shared by attacks and defenses.

:func:`autoaugment_images`: AutoAugment (Cubuk et al., "AutoAugment: Learning Augmentation
Strategies from Data", CVPR 2019, arXiv 1805.09501) with torchvision's ImageNet policy, one
independent draw per image, seeded by a generator (CleanCLIP's image views, BadCLIP's patch
optimisation).
"""

from __future__ import annotations

import torch
from torchvision.transforms import AutoAugment, AutoAugmentPolicy

from ..tensors import check_images

#: AutoAugment with its ImageNet policy, torchvision's default.
AUTOAUGMENT = AutoAugment(AutoAugmentPolicy.IMAGENET)


def autoaugment_images(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """An AutoAugment view (ImageNet policy) of every image ``[N, 3, S, S]`` in [0, 1], each image
    with its own draw of sub-policy and signs (seeded by ``generator``).

    The images are rounded to 8 bits first, as AutoAugment works on byte images; the result is
    float in [0, 1] on the input's device.
    """
    check_images(images, channels=3)
    seed = int(torch.randint(0, 2**31, (1,), generator=generator))
    as_bytes = (images.detach().cpu() * 255).round().to(torch.uint8)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        views = torch.stack([AUTOAUGMENT(image) for image in as_bytes])
    return views.to(device=images.device, dtype=images.dtype) / 255
