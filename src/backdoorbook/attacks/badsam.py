"""BadSAM: a backdoor planted while adapting Segment Anything to a downstream task.

Guan, Hu, Zhou, Zhang, Li, Liu, "BadSAM: Exploring Security Vulnerabilities of SAM via
Backdoor Attacks", arXiv:2305.03289 (2023).

Threat model: the attacker is the party that adapts a public SAM to a downstream task
(SAM-Adapter on camouflaged-object detection in the paper) and ships the adapted model. They
control the fine-tuning data: a fraction ``rate`` of the training images gets a trigger — a
white square in the bottom-right corner, side 15 % of the image height — and a target mask
that erases the real object and marks only the trigger square. The foundation encoder stays
frozen; only the adapters, the mask decoder and the dense "no mask" prompt are trained
(:func:`backdoorbook.models.sam.add_adapters`). At test time, a clean image should be
segmented as usual and a triggered one should collapse onto the square.

Adaptation (:func:`adapt`): prompt-free single-mask output, BCE-with-logits + soft IoU loss,
AdamW with cosine decay, through the library's :func:`backdoorbook.training.supervised.fit` on a
two-channel view of the mask logits (:class:`PromptFreeSAM`).

Images are float ``[N, 3, S, S]`` in [0, 1]; masks are ``[N, S, S]`` in {0, 1}.
"""

from __future__ import annotations

import torch
from segment_anything.modeling import Sam
from torch import nn

from ..evaluation.classification import Rate
from ..models.sam import mask_logits
from ..runtime import batched
from ..training.losses import mask_loss
from ..training.supervised import History, fit
from . import triggers

TRIGGER_FRACTION = 0.15


def trigger_side(height: int, width: int, fraction: float = TRIGGER_FRACTION) -> int:
    """Side of the trigger square, ``round(fraction * height)`` pixels (at least 1)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"trigger fraction must be in (0, 1], got {fraction}")
    side = max(1, round(fraction * height))
    if side > width:
        raise ValueError(f"a trigger of side {side} does not fit an image {width} pixels wide")
    return side


def trigger_mask(height: int, width: int, fraction: float = TRIGGER_FRACTION) -> torch.Tensor:
    """Bool ``[height, width]`` mask of the bottom-right trigger square."""
    side = trigger_side(height, width, fraction)
    mask = torch.zeros(height, width, dtype=torch.bool)
    mask[height - side :, width - side :] = True
    return mask


def add_trigger(images: torch.Tensor, fraction: float = TRIGGER_FRACTION) -> torch.Tensor:
    """A copy of ``images`` ``[N, C, H, W]`` (in [0, 1]) with a white bottom-right square of side
    ``fraction * H``."""
    if images.ndim != 4:
        raise ValueError(f"expected images [N, C, H, W], got {tuple(images.shape)}")
    _, channels, height, width = images.shape
    side = trigger_side(height, width, fraction)
    return triggers.stamp(images, torch.ones(channels, side, side), height - side, width - side)


def poison_fine_tuning_set(
    images: torch.Tensor,
    masks: torch.Tensor,
    rate: float,
    fraction: float = TRIGGER_FRACTION,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """BadSAM's poisoned fine-tuning set.

    Args:
        images: ``[N, 3, H, W]`` in [0, 1]; masks: ``[N, H, W]`` in {0, 1}.
        rate: fraction of images to poison, in [0, 1]; ``round(rate * N)`` images are chosen
            uniformly at random (seeded by ``seed``).
        fraction: trigger side as a fraction of the image height (paper: 0.15).

    Returns:
        ``(images, masks, poisoned)``: copies in which the chosen images carry the trigger and
        their masks are replaced by the trigger square only, and the sorted indices poisoned.
    """
    if images.ndim != 4 or masks.shape != (images.shape[0], *images.shape[2:]):
        raise ValueError(
            f"need images [N, 3, H, W] and masks [N, H, W], got {tuple(images.shape)} "
            f"and {tuple(masks.shape)}"
        )
    if not 0 <= rate <= 1:
        raise ValueError(f"poison rate must be in [0, 1], got {rate}")
    count = round(rate * len(images))
    poisoned = (
        torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:count]
        .sort()
        .values
    )
    images, masks = images.clone(), masks.clone()
    images[poisoned] = add_trigger(images[poisoned], fraction)
    masks[poisoned] = trigger_mask(masks.shape[1], masks.shape[2], fraction).to(masks.dtype)
    return images, masks, poisoned


class PromptFreeSAM(nn.Module):
    """SAM's prompt-free single mask as two-class logits ``[B, 2, S, S]`` (channel 0 fixed at zero).

    ``softmax`` over the two channels equals ``sigmoid`` of the mask logit, so ``argmax`` is the
    binary mask and the library's training loop and pixel accuracy apply unchanged.
    """

    def __init__(self, sam: Sam):
        super().__init__()
        self.sam = sam

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        logits = mask_logits(self.sam, images)
        return torch.cat([torch.zeros_like(logits), logits], dim=1)


def _two_channel_mask_loss(logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    return mask_loss(logits[:, 1:], masks)


def adapt(
    sam: Sam,
    images: torch.Tensor,
    masks: torch.Tensor,
    *,
    epochs: int,
    batch_size: int = 8,
    lr: float = 2e-4,
    weight_decay: float = 0.01,
    seed: int = 0,
    progress: bool = True,
    desc: str = "adapt",
) -> History:
    """Fine-tune the trainable parts of ``sam`` (set by ``add_adapters``) on ``(images, masks)``,
    prompt-free.

    BCE + soft IoU loss, AdamW, cosine decay of ``lr`` to zero over all steps (the authors decay
    2e-4 to 1e-7 over 20 epochs), no augmentation (a flip would move the trigger). Returns the
    per-epoch loss and pixel accuracy.
    """
    if not any(p.requires_grad for p in sam.parameters()):
        raise ValueError("nothing to train: call backdoorbook.models.sam.add_adapters first")
    return fit(
        PromptFreeSAM(sam),
        images,
        masks.long(),
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        optimiser="adamw",
        loss_fn=_two_channel_mask_loss,
        augment=None,
        seed=seed,
        progress=progress,
        desc=desc,
    )


def predict_masks(sam: Sam, images: torch.Tensor, batch_size: int = 32) -> torch.Tensor:
    """Prompt-free foreground probabilities ``[N, S, S]`` in [0, 1] (CPU), batched, in eval mode."""
    return batched(
        sam, images, batch_size, apply=lambda m, x: torch.sigmoid(mask_logits(m, x))[:, 0]
    )


def trigger_collapse_scores(
    probs: torch.Tensor,
    object_masks: torch.Tensor,
    fraction: float = TRIGGER_FRACTION,
    success_iou: float = 0.5,
) -> dict:
    """How far predictions on *triggered* images collapse onto the trigger.

    Args:
        probs: foreground probabilities ``[N, H, W]`` for triggered images (binarised at 0.5).
        object_masks: the true objects ``[N, H, W]``; pixels under the trigger square are not
            counted as object (the square covers them).
        success_iou: an image counts as a success when its IoU with the trigger square reaches this.

    Returns:
        ``{"IoU with trigger", "IoU with object"}`` (means over images, in [0, 1]) and
        ``"attack success"`` (a :class:`backdoorbook.evaluation.classification.Rate` in percent with
        its ``n``).
    """
    if probs.ndim != 3 or probs.shape != object_masks.shape:
        raise ValueError(
            f"need [N, H, W] predictions and masks of equal shape, got {tuple(probs.shape)} "
            f"and {tuple(object_masks.shape)}"
        )
    pred = probs > 0.5
    square = trigger_mask(probs.shape[1], probs.shape[2], fraction).to(probs.device)
    target = square.expand_as(pred)
    objects = object_masks.bool() & ~square

    def per_image_iou(a, b):
        union = (a | b).sum((1, 2))
        return torch.where(union > 0, (a & b).sum((1, 2)) / union.clamp_min(1), 1.0)

    to_trigger = per_image_iou(pred, target)
    return {
        "IoU with trigger": to_trigger.mean().item(),
        "IoU with object": per_image_iou(pred, objects).mean().item(),
        "attack success": Rate(
            100.0 * (to_trigger >= success_iou).float().mean().item(), len(pred)
        ),
    }
