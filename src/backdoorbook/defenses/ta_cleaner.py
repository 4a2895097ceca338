"""TA-Cleaner: CleanCLIP plus fine-grained text alignment with positive and negative sub-captions.

Xun et al., "TA-Cleaner: A Fine-grained Text Alignment Backdoor Defense Strategy for
Multimodal Contrastive Learning", 2024, arXiv 2409.17601 (no public code at the time of writing).

Threat model: as CleanCLIP (:mod:`.cleanclip`): a possibly poisoned model and a small clean
fine-tuning set. The abstract's idea: CleanCLIP's text self-supervision is too coarse; each
epoch, for a random subset of samples, build *positive* sub-captions (keep the core subject,
drop the details) and *negative* counterfactual sub-captions (change one semantic
component), and align the image with them, which strengthens the text side and cuts the
trigger-to-target shortcut.

The abstract leaves the construction, weights and subset size open; the choices here
(arguments, defaults stated):

- subject: the longest class name occurring in the caption (``classes``), standing in for a
  parser; positive sub-caption: ``"a photo of a {subject}."`` (a training-caption form, none
  of the zero-shot prompts :data:`backdoorbook.data.captions.ZERO_SHOT_TEMPLATES`);
- negatives ``"subject"`` (default): the caption with its subject replaced by another random
  class; ``"attribute"``: the caption with its colour word replaced by another palette colour
  (falls back to a subject swap when the caption names no colour);
- loss on the subset members of a batch: ``subcaption_weight`` x [CLIP loss between images and
  their positive sub-captions + cross-entropy of (image·positive, image·negative) scaled
  similarities towards the positive], added to the CleanCLIP loss;
- ``subset_fraction`` = 0.5 of the fine-tuning pairs, redrawn every epoch.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ..data.captions import PALETTE
from ..training.contrastive import clip_loss
from .cleanclip import CleanCLIPLoss, cleanclip

NEGATIVE_KINDS = ("subject", "attribute")


def caption_subject(caption: str, classes: Sequence[str]) -> str | None:
    """The longest class name that occurs in ``caption`` as whole words (``None`` if none does)."""
    padded = f" {caption.rstrip('.').replace(',', ' ')} "
    found = [c for c in classes if f" {c} " in padded]
    return max(found, key=len) if found else None


def sub_captions(
    caption: str, classes: Sequence[str], rng: random.Random, negatives: str = "subject"
) -> tuple[str, str]:
    """``(positive, negative)`` sub-captions of ``caption`` (see the module docstring)."""
    if negatives not in NEGATIVE_KINDS:
        raise ValueError(f"negatives must be one of {NEGATIVE_KINDS}, got {negatives!r}")
    subject = caption_subject(caption, classes)
    if subject is None:
        return caption, caption
    positive = f"a photo of a {subject}."
    words = caption.rstrip(".").split()
    colours = [i for i, w in enumerate(words) if w.rstrip(",") in PALETTE]
    if negatives == "attribute" and colours:
        i = rng.choice(colours)
        colour, comma = words[i].rstrip(","), "," if words[i].endswith(",") else ""
        words[i] = rng.choice([c for c in PALETTE if c != colour]) + comma
        return positive, " ".join(words) + "."
    other = rng.choice([c for c in classes if c != subject])
    return positive, f" {caption} ".replace(f" {subject}", f" {other}", 1).strip()


class TACleanerLoss(CleanCLIPLoss):
    """CleanCLIP loss plus the sub-caption alignment term on a per-epoch random subset."""

    def __init__(
        self,
        model,
        images: torch.Tensor,
        captions: Sequence[str],
        classes: Sequence[str],
        *,
        inmodal_weight: float = 1.0,
        subcaption_weight: float = 1.0,
        subset_fraction: float = 0.5,
        negatives: str = "subject",
        seed: int = 0,
    ):
        super().__init__(model, images, captions, inmodal_weight=inmodal_weight, seed=seed)
        if not 0 < subset_fraction <= 1 or subcaption_weight < 0:
            raise ValueError(
                f"need 0 < subset_fraction <= 1 and subcaption_weight >= 0, got "
                f"{subset_fraction}, {subcaption_weight}"
            )
        if negatives not in NEGATIVE_KINDS:
            raise ValueError(f"negatives must be one of {NEGATIVE_KINDS}, got {negatives!r}")
        self.classes, self.negatives = list(classes), negatives
        self.subcaption_weight, self.subset_fraction = subcaption_weight, subset_fraction
        self.seed, self._epoch, self._subset = seed, None, None

    def subset(self, epoch: int) -> torch.Tensor:
        """Boolean mask ``[N]`` of this epoch's subset (redrawn every epoch, seeded)."""
        if epoch != self._epoch:
            n = len(self.images)
            chosen = torch.randperm(
                n, generator=torch.Generator().manual_seed(self.seed * 1000 + epoch)
            )
            self._subset = torch.zeros(n, dtype=torch.bool)
            self._subset[chosen[: max(1, round(self.subset_fraction * n))]] = True
            self._epoch = epoch
        return self._subset

    def __call__(self, index: torch.Tensor, epoch: int) -> torch.Tensor:
        loss, img = self.terms(index)
        members = self.subset(epoch)[index]
        if self.subcaption_weight == 0 or int(members.sum()) < 2:
            return loss
        pairs = [
            sub_captions(self.captions[i], self.classes, self.rng, self.negatives)
            for i in index[members].tolist()
        ]
        pos = self.model.encode_text([p for p, _ in pairs])
        neg = self.model.encode_text([n for _, n in pairs])
        scale, img = self.model.logit_scale(), img[members]
        versus = scale * torch.stack([(img * pos).sum(1), (img * neg).sum(1)], dim=1)
        sub = clip_loss(img, pos, scale) + F.cross_entropy(
            versus, torch.zeros(len(img), dtype=torch.long, device=img.device)
        )
        return loss + self.subcaption_weight * sub


def ta_cleaner(
    model,
    images: torch.Tensor,
    captions: Sequence[str],
    classes: Sequence[str],
    *,
    epochs: int = 3,
    batch_size: int = 128,
    lr: float = 5e-4,
    inmodal_weight: float = 1.0,
    subcaption_weight: float = 1.0,
    subset_fraction: float = 0.5,
    negatives: str = "subject",
    seed: int = 0,
    progress: bool = True,
) -> list[float]:
    """Fine-tune ``model`` in place with the TA-Cleaner loss on clean pairs; returns per-epoch
    losses."""
    objective = TACleanerLoss(
        model,
        images,
        captions,
        classes,
        inmodal_weight=inmodal_weight,
        subcaption_weight=subcaption_weight,
        subset_fraction=subset_fraction,
        negatives=negatives,
        seed=seed,
    )
    return cleanclip(
        model,
        images,
        captions,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        objective=objective,
        progress=progress,
    )
