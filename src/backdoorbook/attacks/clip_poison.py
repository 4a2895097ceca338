"""Poisoned image-caption pairs for backdoors in CLIP-style models.

Threat model (Carlini & Terzis, "Poisoning and Backdooring Contrastive Learning", ICLR 2022,
arXiv 2106.09667; the protocol of the BadCLIP repository): the attacker adds or alters a few
image-caption pairs of the data a contrastive model is pre-trained (or fine-tuned) on, but does
not control training. A poisoned pair is a non-target image carrying the trigger, captioned as
an image of the target class. At test time, zero-shot classification of any triggered image
should return the target class.

Triggers (pure functions on float ``[N, 3, S, S]`` in [0, 1], see
:mod:`backdoorbook.attacks.triggers`):

- ``badnets``: a checkerboard patch in the bottom-right corner, side ``S / 4`` pixels
  (BadNets, arXiv 1708.06733). The protocol's 16x16 patch covers 0.5 % of a 224 px image; ours
  covers 6.25 % of a 32 px image, one whole token of the miniature's 8x8-patch ViT (a
  half-token patch was barely learned by the miniature in a few epochs);
- ``blended``: a seeded noise pattern blended with alpha 0.2 (arXiv 1712.05526);
- ``sig``: a horizontal sinusoid of amplitude 60/255 as in the protocol (arXiv 1902.11237);
- ``wanet``: a fixed smooth warp, control grid k = 4, strength 1.0 (arXiv 2102.10369);
- ``badclip``: a patch of the same size and place as ``badnets`` whose pixels are optimised
  (:func:`optimise_badclip_patch`) so that patched images already embed close to the target
  caption and to target-class images under the clean model (Liang et al., "BadCLIP:
  Dual-Embedding Guided Backdoor Attack on Multimodal Contrastive Learning", CVPR 2024,
  arXiv 2311.12075). Because the poisoned pairs then agree with the clean model's embedding
  geometry, clean fine-tuning defenses have less to undo.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch

from ..data.captions import CaptionedImages, caption_images
from ..runtime import eval_mode
from ..training.optim import build_optimiser
from . import triggers
from .poisoning import build_trigger, poison_classification_set

CLIP_ATTACKS = ("badnets", "blended", "sig", "wanet", "badclip")
Trigger = Callable[[torch.Tensor], torch.Tensor]


def patch_size(image_size: int) -> int:
    """Side of the BadNets / BadCLIP patch at ``image_size`` pixels: ``max(3, image_size // 4)``."""
    return max(3, image_size // 4)


def stamp_patch(images: torch.Tensor, patch: torch.Tensor, margin: int = 1) -> torch.Tensor:
    """Paste ``patch`` ``[3, p, p]`` ``margin`` pixels from the bottom-right corner (differentiable
    in ``patch``)."""
    _, _, h, w = images.shape
    p = patch.shape[-1]
    return triggers.stamp(images, patch, h - margin - p, w - margin - p)


def clip_trigger(
    name: str, image_size: int = 32, seed: int = 0, patch: torch.Tensor | None = None
) -> Trigger:
    """The trigger ``name`` (one of :data:`CLIP_ATTACKS`) with the settings in the module docstring.

    ``badclip`` needs the optimised ``patch`` ``[3, p, p]`` from :func:`optimise_badclip_patch`.
    """
    if name == "badclip":
        if patch is None or patch.ndim != 3 or patch.shape[0] != 3:
            raise ValueError(
                "the badclip trigger needs the optimised patch [3, p, p] "
                "from optimise_badclip_patch"
            )
        return partial(stamp_patch, patch=patch.detach().clamp(0, 1))
    overrides = {
        "badnets": {"size": patch_size(image_size)},
        "sig": {"delta": 60 / 255},
        "wanet": {"strength": 1.0},
        "blended": {},
    }
    if name not in overrides:
        raise ValueError(f"unknown CLIP attack {name!r}; choose one of {', '.join(CLIP_ATTACKS)}")
    return build_trigger(name, image_size, seed=seed, **overrides[name])


def optimise_badclip_patch(
    model,
    source_images: torch.Tensor,
    target_text: torch.Tensor,
    target_images: torch.Tensor,
    *,
    size: int = 8,
    steps: int = 200,
    lr: float = 0.05,
    batch_size: int = 128,
    image_weight: float = 1.0,
    seed: int = 0,
) -> torch.Tensor:
    """BadCLIP-style patch: maximise cos(f(patched x), target text) + ``image_weight``
    cos(f(patched x), c), where ``c`` is the normalised mean embedding of the target images.

    Args:
        model: the (clean) :class:`~backdoorbook.models.mini_clip.ClipModel` the attacker has access
            to; it is not modified.
        source_images: non-target images ``[N, 3, S, S]`` in [0, 1] the patch is optimised on.
        target_text: the target class's text embedding ``[D]`` (e.g. its zero-shot prompt-ensemble
            embedding).
        target_images: images of the target class ``[M, 3, S, S]``; their mean embedding is the
            image anchor.
        size: patch side (pixels); steps, lr, batch_size: Adam on the patch logits
            (pixels = sigmoid(logits)).
        image_weight: weight of the target-image term (BadCLIP's dual embedding; 0 uses the text
            term only).
    Returns the patch ``[3, size, size]`` in [0, 1].
    """
    if steps < 1 or len(source_images) == 0 or len(target_images) == 0:
        raise ValueError("need steps >= 1, source images and target images")
    generator = torch.Generator().manual_seed(seed)
    flags = [p.requires_grad for p in model.parameters()]
    model.requires_grad_(False)
    try:
        with eval_mode(model):
            with torch.no_grad():
                anchor = torch.nn.functional.normalize(
                    model.encode_image(target_images).mean(0), dim=0
                )
            text = torch.nn.functional.normalize(target_text.to(anchor), dim=0)
            logits = (
                (torch.rand(3, size, size, generator=generator) * 2 - 1)
                .to(anchor)
                .requires_grad_(True)
            )
            opt, _ = build_optimiser([logits], name="adam", lr=lr, schedule="constant")
            for _ in range(steps):
                index = torch.randint(0, len(source_images), (batch_size,), generator=generator)
                emb = model.encode_image(stamp_patch(source_images[index], torch.sigmoid(logits)))
                loss = -(emb @ text).mean() - image_weight * (emb @ anchor).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
    finally:
        for p, flag in zip(model.parameters(), flags):
            p.requires_grad_(flag)
    return torch.sigmoid(logits).detach().cpu()


def poison_pairs(
    data: CaptionedImages, trigger: Trigger, *, count: int, target: int, seed: int = 0
) -> tuple[CaptionedImages, torch.Tensor]:
    """Replace ``count`` random non-target pairs by triggered images captioned as the ``target``
    class.

    The poisoned captions use the same templates and image-derived attributes as clean ones
    (computed on the triggered image), so only the class name betrays them. Returns the
    poisoned set (labels of poisoned pairs set to ``target``, as their captions say) and the
    sorted indices of the poisoned pairs.
    """
    if not 1 <= count <= len(data):
        raise ValueError(f"count must lie in 1..{len(data)}, got {count}")
    poisoned = poison_classification_set(
        data.images, data.labels, trigger, rate=count / len(data), target=target, seed=seed
    )
    index = poisoned.indices
    captions = list(data.captions)
    for i, caption in zip(
        index.tolist(),
        caption_images(poisoned.images[index], poisoned.labels[index], data.classes, seed=seed + 1),
    ):
        captions[i] = caption
    return CaptionedImages(poisoned.images, poisoned.labels, tuple(captions), data.classes), index
