"""CleanCLIP: fine-tune a possibly backdoored CLIP on clean pairs with added in-modal
self-supervision.

Bansal et al., "CleanCLIP: Mitigating Data Poisoning Attacks in Multimodal Contrastive
Learning", ICCV 2023, arXiv 2303.03323 (authors' code: github.com/nishadsinghi/CleanCLIP).

Threat model: the defender holds the (possibly poisoned) pre-trained model and a small set of
clean image-caption pairs; they know neither the trigger nor the target. Fine-tuning minimises

    L = L_CLIP(I, T) + w * (L_NCE(I, aug I) + L_NCE(T, aug T)) / 2,

where the in-modal terms align each image with its own augmented view (and each caption with
its own augmented caption) against the other samples of the batch. Learning each modality
independently is meant to break the spurious trigger-to-target-text link. The paper uses
w = 1 (``inmodal_weight``), AutoAugment for images and EDA for captions.

Choices made here (arguments): images are augmented with a reflect-pad-4 random crop and flip
(:func:`backdoorbook.training.supervised.random_crop_flip`) plus per-image brightness / contrast
jitter and random grayscale, a cheap stand-in for AutoAugment at 32 px; captions with EDA (Wei &
Zou, "EDA: Easy Data Augmentation Techniques for Boosting Performance on Text Classification
Tasks", EMNLP 2019, arXiv 1901.11196) — one of synonym replacement, random insertion,
random swap or random deletion per caption, with a small synonym table for the caption
vocabulary instead of WordNet (which is not installed).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch

from ..training.contrastive import Objective, clip_loss, train_contrastive
from ..training.supervised import random_crop_flip

#: Synonyms for EDA's replacement and insertion (the caption vocabulary of
#: backdoorbook.data.captions).
SYNONYMS = {
    "photo": ("picture", "image", "snapshot"),
    "picture": ("photo", "image"),
    "image": ("photo", "picture"),
    "dark": ("dim", "shadowy"),
    "bright": ("light", "sunny"),
    "softly": ("gently", "evenly"),
    "close-up": ("detailed", "zoomed"),
    "low": ("poor",),
    "resolution": ("quality",),
    "mostly": ("largely", "chiefly"),
    "tones": ("hues", "shades"),
    "scene": ("setting", "view"),
    "red": ("crimson",),
    "yellow": ("golden",),
    "green": ("olive",),
    "blue": ("azure",),
    "purple": ("violet",),
    "brown": ("tan",),
    "black": ("dark",),
    "gray": ("grey",),
    "white": ("pale",),
    "pink": ("rosy",),
}
EDA_OPERATIONS = ("synonym", "insert", "swap", "delete")


def eda(caption: str, rng: random.Random, alpha: float = 0.1) -> str:
    """One EDA view of ``caption``: a random operation touching ``max(1, round(alpha * words))``
    words."""
    words = caption.rstrip(".").split()
    if len(words) < 2:
        return caption
    n = max(1, round(alpha * len(words)))
    op = rng.choice(EDA_OPERATIONS)
    if op == "synonym":
        candidates = [i for i, w in enumerate(words) if w in SYNONYMS]
        for i in rng.sample(candidates, min(n, len(candidates))):
            words[i] = rng.choice(SYNONYMS[words[i]])
    elif op == "insert":
        candidates = [w for w in words if w in SYNONYMS]
        for _ in range(n if candidates else 0):
            words.insert(
                rng.randrange(len(words) + 1), rng.choice(SYNONYMS[rng.choice(candidates)])
            )
    elif op == "swap":
        for _ in range(n):
            i, j = rng.sample(range(len(words)), 2)
            words[i], words[j] = words[j], words[i]
    else:
        kept = [w for w in words if rng.random() > alpha]
        words = kept or [rng.choice(words)]
    return " ".join(words) + "."


def augment_images(
    images: torch.Tensor, generator: torch.Generator, jitter: float = 0.3, grayscale_p: float = 0.2
) -> torch.Tensor:
    """A random view of each image ``[N, 3, S, S]`` in [0, 1]: crop + flip, brightness / contrast
    jitter, grayscale."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=generator)))
        x, _ = random_crop_flip(4)(images, torch.zeros(len(images), dtype=torch.long))
        n = len(x)
        brightness = 1 + (torch.rand(n, 1, 1, 1) * 2 - 1) * jitter
        contrast = 1 + (torch.rand(n, 1, 1, 1) * 2 - 1) * jitter
        mean = x.mean((1, 2, 3), keepdim=True)
        x = ((x * brightness - mean) * contrast + mean).clamp(0, 1)
        gray = (x * torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype)[:, None, None]).sum(
            1, keepdim=True
        )
        return torch.where(torch.rand(n, 1, 1, 1) < grayscale_p, gray.expand_as(x), x)


class CleanCLIPLoss:
    """The CleanCLIP loss on a batch; :meth:`terms` also returns the batch's image embeddings for
    subclasses."""

    def __init__(
        self,
        model,
        images: torch.Tensor,
        captions: Sequence[str],
        *,
        inmodal_weight: float = 1.0,
        seed: int = 0,
    ):
        if len(images) != len(captions):
            raise ValueError(f"{len(images)} images but {len(captions)} captions")
        if inmodal_weight < 0:
            raise ValueError(f"inmodal_weight must be >= 0, got {inmodal_weight}")
        self.model, self.images, self.captions = model, images, captions
        self.inmodal_weight = inmodal_weight
        self.generator = torch.Generator().manual_seed(seed)
        self.rng = random.Random(seed)

    def terms(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(loss, image_embeddings [B, D])`` for the pairs at ``index``."""
        model, scale = self.model, self.model.logit_scale()
        x = self.images[index]
        captions = [self.captions[i] for i in index.tolist()]
        img, txt = model.encode_image(x), model.encode_text(captions)
        loss = clip_loss(img, txt, scale)
        if self.inmodal_weight > 0:
            img_aug = model.encode_image(augment_images(x, self.generator))
            txt_aug = model.encode_text([eda(c, self.rng) for c in captions])
            loss = (
                loss
                + self.inmodal_weight
                * (clip_loss(img, img_aug, scale) + clip_loss(txt, txt_aug, scale))
                / 2
            )
        return loss, img

    def __call__(self, index: torch.Tensor, epoch: int) -> torch.Tensor:
        return self.terms(index)[0]


def cleanclip(
    model,
    images: torch.Tensor,
    captions: Sequence[str],
    *,
    epochs: int = 3,
    batch_size: int = 128,
    lr: float = 5e-4,
    inmodal_weight: float = 1.0,
    seed: int = 0,
    objective: Objective | None = None,
    progress: bool = True,
) -> list[float]:
    """Fine-tune ``model`` in place on the clean pairs with the CleanCLIP loss; returns per-epoch
    losses.

    ``inmodal_weight`` = 0 is plain CLIP fine-tuning on the clean pairs (the chapter's ablation).
    ``objective`` replaces the loss (TA-Cleaner passes its extended loss).
    """
    objective = objective or CleanCLIPLoss(
        model, images, captions, inmodal_weight=inmodal_weight, seed=seed
    )
    return train_contrastive(
        model,
        len(images),
        objective,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        progress=progress,
        desc="CleanCLIP",
    )
