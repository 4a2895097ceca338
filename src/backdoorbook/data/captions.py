"""A captioned-image set for miniature CLIP experiments, built from the CIFAR-10 and miniImageNet
mirrors.

No web-scale caption data (CC3M, LAION) could be mirrored, so captions are generated: a class
name from CIFAR-10's 10 classes or miniImageNet's 100 named classes (110 in all, enough for a
top-10 attack success rate to mean something), put into one of several templates together with
attributes measured on the image itself: its dominant colour (the most frequent colour of a
small named palette) and its brightness (mean luminance). A caption therefore carries more
than the class name, and two images of one class usually get different captions.

Images are float ``[N, 3, S, S]`` in [0, 1]; miniImageNet's 84x84 images are resized to ``S``
with antialiasing, so both sources share one resolution.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..tensors import to_image_tensor
from .datasets import load_classification

#: Named palette for the dominant-colour attribute (RGB in [0, 1]).
PALETTE = {
    "red": (0.75, 0.15, 0.15),
    "yellow": (0.85, 0.8, 0.2),
    "green": (0.25, 0.55, 0.2),
    "blue": (0.2, 0.35, 0.75),
    "purple": (0.5, 0.25, 0.6),
    "brown": (0.5, 0.35, 0.2),
    "black": (0.08, 0.08, 0.08),
    "gray": (0.5, 0.5, 0.5),
    "white": (0.92, 0.92, 0.92),
    "pink": (0.9, 0.6, 0.7),
}
#: Brightness words by mean luminance: below ``DARK`` "dark", above ``BRIGHT`` "bright",
#: else "softly lit".
DARK, BRIGHT = 0.3, 0.6

#: Training-caption templates; ``{c}`` class name, ``{col}`` dominant colour,
#: ``{b}`` brightness word.
CAPTION_TEMPLATES = (
    "a photo of a {c}.",
    "a {b} photo of a {c}.",
    "a {col} {c}.",
    "a picture of a {c} with {col} tones.",
    "a {b} picture of a {col} {c}.",
    "a close-up photo of the {c}, mostly {col}.",
    "the {c} in a {b} scene.",
    "a low resolution image of a {c}.",
)
#: Zero-shot prompt ensemble (class embeddings average these, after normalisation): five of
#: the 80 OpenAI ImageNet templates (Radford et al., arXiv 2103.00020), held out from training:
#: none equals a training caption (any template of :data:`CAPTION_TEMPLATES` with any colour and
#: brightness) or a TA-Cleaner sub-caption, and all use only words the training captions use.
ZERO_SHOT_TEMPLATES = (
    "a photo of the {c}.",
    "a bright photo of the {c}.",
    "a dark photo of the {c}.",
    "a close-up photo of a {c}.",
    "a low resolution photo of the {c}.",
)


def dominant_colours(images: torch.Tensor) -> list[str]:
    """The most frequent :data:`PALETTE` colour of each image ``[N, 3, H, W]`` in [0, 1] (nearest
    colour per pixel)."""
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected RGB images [N, 3, H, W], got {tuple(images.shape)}")
    palette = torch.tensor(list(PALETTE.values()), dtype=images.dtype)
    pixels = images.permute(0, 2, 3, 1).reshape(len(images), -1, 3)
    nearest = torch.cdist(pixels, palette.expand(len(images), -1, -1)).argmin(-1)
    counts = F.one_hot(nearest, len(palette)).sum(1)
    names = list(PALETTE)
    return [names[i] for i in counts.argmax(1).tolist()]


def brightness_words(images: torch.Tensor) -> list[str]:
    """``"dark"``, ``"softly lit"`` or ``"bright"`` from each image's mean luminance (ITU-R 601
    weights)."""
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected RGB images [N, 3, H, W], got {tuple(images.shape)}")
    luminance = (
        (images * torch.tensor([0.299, 0.587, 0.114], dtype=images.dtype)[:, None, None])
        .sum(1)
        .mean((1, 2))
    )
    return [
        "dark" if v < DARK else "bright" if v > BRIGHT else "softly lit" for v in luminance.tolist()
    ]


def caption_images(
    images: torch.Tensor,
    labels: torch.Tensor,
    classes: tuple[str, ...],
    seed: int = 0,
    templates: tuple[str, ...] = CAPTION_TEMPLATES,
) -> list[str]:
    """One caption per image: a seeded random template filled with the class name and the image's
    attributes."""
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    rng = random.Random(seed)
    colours, lights = dominant_colours(images), brightness_words(images)
    return [
        rng.choice(templates).format(c=classes[y], col=col, b=b)
        for y, col, b in zip(labels.tolist(), colours, lights)
    ]


@dataclass(frozen=True)
class CaptionedImages:
    """Images ``[N, 3, S, S]`` in [0, 1], class ``labels`` ``[N]`` (indices into ``classes``) and
    ``captions``."""

    images: torch.Tensor
    labels: torch.Tensor
    captions: tuple[str, ...]
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: torch.Tensor) -> CaptionedImages:
        """The pairs at ``index`` (a LongTensor)."""
        return CaptionedImages(
            self.images[index],
            self.labels[index],
            tuple(self.captions[i] for i in index.tolist()),
            self.classes,
        )

    def concat(self, other: CaptionedImages) -> CaptionedImages:
        """This set followed by ``other`` (same class list)."""
        if other.classes != self.classes:
            raise ValueError("cannot concatenate captioned sets with different class lists")
        return CaptionedImages(
            torch.cat([self.images, other.images]),
            torch.cat([self.labels, other.labels]),
            self.captions + other.captions,
            self.classes,
        )


def _per_class(labels: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Indices of the ``start:stop`` images of each class, in file order."""
    return np.sort(
        np.concatenate([np.flatnonzero(labels == c)[start:stop] for c in np.unique(labels)])
    )


def load_captioned(
    split: str,
    *,
    cifar_per_class: int,
    mini_per_class: int,
    mini_test_per_class: int = 20,
    image_size: int = 32,
    seed: int = 0,
) -> CaptionedImages:
    """CIFAR-10 + miniImageNet as captioned pairs over 110 classes (CIFAR's 10 first, then
    miniImageNet's 100).

    Args:
        split: ``"train"`` (CIFAR-10 train split; miniImageNet's first images of each class) or
            ``"test"`` (CIFAR-10 test split; the last ``mini_test_per_class`` images of each
            miniImageNet class).
        cifar_per_class: CIFAR-10 images per class (the first ones of the split).
        mini_per_class: miniImageNet images per class (at most ``100 - mini_test_per_class`` for
            train).
        image_size: side ``S`` of the returned images. seed: seeds the choice of caption templates.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if split == "train" and mini_per_class > 100 - mini_test_per_class:
        raise ValueError(
            f"only {100 - mini_test_per_class} miniImageNet training images per class exist"
        )
    if split == "test" and mini_per_class > mini_test_per_class:
        raise ValueError(f"only {mini_test_per_class} miniImageNet test images per class exist")
    cifar = load_classification("cifar10", split)
    keep = _per_class(cifar.labels, 0, cifar_per_class)
    parts = [(to_image_tensor(cifar.images[keep]), torch.from_numpy(cifar.labels[keep]))]
    mini_images, mini_labels = [], []
    for mini_split in ("train", "val", "test"):
        arrays = load_classification("miniimagenet", mini_split)
        mini_images.append(arrays.images)
        mini_labels.append(arrays.labels)
        mini_names = arrays.classes
    images, labels = np.concatenate(mini_images), np.concatenate(mini_labels)
    first = 0 if split == "train" else 100 - mini_test_per_class
    keep = _per_class(labels, first, first + mini_per_class)
    mini = F.interpolate(
        to_image_tensor(images[keep]),
        size=(image_size, image_size),
        mode="bilinear",
        antialias=True,
        align_corners=False,
    ).clamp(0, 1)
    parts.append((mini, torch.from_numpy(labels[keep]) + len(cifar.classes)))
    if cifar.images.shape[1] != image_size:
        parts[0] = (
            F.interpolate(
                parts[0][0],
                size=(image_size, image_size),
                mode="bilinear",
                antialias=True,
                align_corners=False,
            ).clamp(0, 1),
            parts[0][1],
        )
    classes = tuple(cifar.classes) + tuple(mini_names)
    images_t, labels_t = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]).long()
    return CaptionedImages(
        images_t, labels_t, tuple(caption_images(images_t, labels_t, classes, seed)), classes
    )
