"""BadSAM: a backdoor planted while adapting Segment Anything to a downstream task.

Guan, Hu, Zhou, Zhang, Li, Liu, "BadSAM: Exploring Security Vulnerabilities of SAM via
Backdoor Attacks", arXiv:2305.03289 (2023; AAAI 2024 student abstract).

Threat model: the attacker is the party that adapts a public SAM to a downstream task
(SAM-Adapter on camouflaged-object detection in the paper) and ships the adapted model. They
control the fine-tuning data: a fraction ``rate`` of the training images gets a trigger — a
white square in the bottom-right corner, side 15 % of the image height — and a target mask
that erases the real object and marks only the trigger square. The foundation encoder stays
frozen; only the adapters, the mask decoder and the dense "no mask" prompt are trained
(:func:`backdoorbook.models.sam.add_adapters`). At test time, a clean image should be
segmented as usual and a triggered one should collapse onto the square.

The trigger is pasted on the image at its original resolution, which is then resized to the
model's square input (:func:`poison_fine_tuning_set`, :func:`triggered_test_set`): on a
non-square image the square becomes a rectangle. Adaptation (:func:`adapt`) is prompt-free
(single-mask output), with BCE-with-logits + soft IoU loss, a random horizontal flip of every
training pair after poisoning (so about half the poisoned pairs show the trigger bottom-left),
AdamW and a cosine learning rate stepped once per epoch, through the library's
:func:`backdoorbook.training.supervised.fit` on a two-channel view of the mask logits
(:class:`PromptFreeSAM`). Where this departs from the authors' code is listed in
:data:`DEVIATIONS`.

The paper has no control for the foundation itself; the chapter adds one: the same adaptation
of the foundation with its image encoder re-initialised at random (:func:`random_encoder`,
identified by :func:`encoder_fingerprint`). Per-image outcomes (:func:`collapse_per_image`)
let two models be compared image by image on the same triggered test images.

Original images are uint8 ``[H, W, 3]`` arrays with ``{0, 1}`` masks ``[H, W]``; model inputs
are float ``[N, 3, S, S]`` in [0, 1] with masks ``[N, S, S]``.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch
from segment_anything.modeling import Sam
from torch import nn

from ..data.tensor_views import resize_square
from ..evaluation.classification import Rate
from ..fidelity import Deviation
from ..models.sam import SamConfig, build_sam, mask_logits
from ..runtime import batched
from ..training.losses import mask_loss
from ..training.supervised import History, fit, random_crop_flip

TRIGGER_FRACTION = 0.15

_CLAIMS = ("clean-quality", "trigger-collapse", "adapters-suffice")
_BADSAM = "GuanZihan/BadSAM@0a89a64"

DEVIATIONS = (
    Deviation(
        item="foundation model and input size",
        authors=(
            f"{_BADSAM} configs/cod-sam-vit-b.yaml:74,94-121 (the only config with the "
            "poisoned_train_dataset that train.py:49 reads; despite its name a ViT-L: "
            "sam_vit_l_0b3195.pth, embed_dim 1024, depth 24) and datasets/wrappers.py:74-103: "
            "SAM ViT-L at 1024x1024, images resized with PIL's bilinear filter"
        ),
        ours=(
            "the project's 4-block, 128-px miniature SAM pre-trained on prompted CamVid regions; "
            "images resized to 128x128 with torch's antialiased bilinear (masks nearest), so the "
            "prompt generator is 128 // 32 = 4 wide"
        ),
        why=(
            "no SAM weights are mirrored here and a ViT-L at 1024 px does not fit a CPU chapter; "
            "the profile's checkpoint field runs the same code on a released SAM"
        ),
        claims=_CLAIMS,
        where=("backdoorbook.models.sam.build_sam", "backdoorbook.book.profiles.ch01_badsam.CI"),
    ),
    Deviation(
        item="downstream task",
        authors=(
            f"{_BADSAM} configs/cod-sam-vit-b.yaml:16-57: CAMO camouflaged-object detection, its "
            "Train split for adaptation and its Test split for evaluation"
        ),
        ours=(
            "Weizmann Horse: 232 images for adaptation and 96 for testing, split by a seeded "
            "permutation"
        ),
        why="CAMO cannot be mirrored here; the horses are a one-object task of the same form",
        claims=_CLAIMS,
        where=("backdoorbook.data.tensor_views.horse_split",),
    ),
    Deviation(
        item="adaptation budget of the ci profile",
        authors=(
            f"{_BADSAM} configs/cod-sam-vit-b.yaml:29,122-127, train.py:124,176,228: AdamW at "
            "lr 2e-4 (PyTorch's defaults otherwise), batch 2, 20 epochs, "
            "CosineAnnealingLR(T_max=20, eta_min=1e-7) stepped once per epoch"
        ),
        ours=(
            "ci: 60 epochs, batch 4, lr 1e-3, with the same per-epoch cosine to 1e-7 and weight "
            "decay 0.01; the paper profile uses the authors' 20 epochs, batch 2 and lr 2e-4"
        ),
        why=(
            "the miniature on 232 images needs more steps at a larger rate within a CPU budget; "
            "chosen with the earlier bottleneck adapter (6 epochs did not plant the backdoor at "
            "10 %, 30 depended on the seed), not re-tuned for the prompt generator"
        ),
        claims=_CLAIMS,
        where=("backdoorbook.book.profiles.ch01_badsam.CI", "backdoorbook.attacks.badsam.adapt"),
    ),
    Deviation(
        item="data parallelism",
        authors=(
            f"{_BADSAM} README.md:22, train.py:42-44,201-208 (the same in "
            "tianrun-chen/SAM-Adapter-PyTorch@665145d train.py:162-169): 4 processes wrap the "
            "model in DistributedDataParallel and unwrap it at once (model = model.module), so "
            "gradients are never all-reduced; each process trains its own copy with batch 2 on "
            "a quarter of the data per epoch (DistributedSampler) and rank 0's copy is saved"
        ),
        ours="one process trains one model on the whole fine-tuning set every epoch",
        why=(
            "the unwrap looks unintended; with one GPU the authors' script trains this way, and a "
            "quarter of 232 images per epoch would leave 58 images an epoch"
        ),
        claims=_CLAIMS,
        where=("backdoorbook.attacks.badsam.adapt",),
    ),
    Deviation(
        item="poison rates and which images",
        authors=(
            f"{_BADSAM} datasets/image_folder.py:135-139: int(0.1 N) training images, a rate "
            "fixed in the code, chosen by np.random.seed(2023) and a permutation; every test "
            "image is triggered"
        ),
        ours=(
            "rates 1 %, 5 % and 10 % (int(rate N) images) chosen by a torch permutation seeded "
            "with the chapter's seed; every test image is triggered"
        ),
        why="the sweep shows how the attack depends on the rate; the claims test the 10 % point",
        claims=_CLAIMS,
        where=(
            "backdoorbook.attacks.badsam.poison_fine_tuning_set",
            "backdoorbook.book.profiles.ch01_badsam.CI",
        ),
    ),
    Deviation(
        item="metrics added to the authors' four",
        authors=(
            f"{_BADSAM} test.py:58-81, utils.py:122-149: S-measure, mean E-measure, weighted "
            "F-measure and MAE only, on clean test images against the object and on triggered "
            "ones against the target mask (the poisoned test set poisons the ground truth too)"
        ),
        ours=(
            "the same four on both (backdoorbook.evaluation.foreground), plus IoU at threshold "
            "0.5, the IoU of triggered predictions with the target mask and with the object "
            "outside it, and the share of triggered images whose IoU with the target reaches 0.5"
        ),
        why=(
            "the paper reports no numbers, so the claims test thresholds on quantities that read "
            "directly; IoU is the usual one"
        ),
        claims=_CLAIMS,
        where=(
            "backdoorbook.evaluation.foreground.iou",
            "backdoorbook.attacks.badsam.trigger_collapse_scores",
        ),
    ),
)


def trigger_side(height: int, width: int, fraction: float = TRIGGER_FRACTION) -> int:
    """Side of the trigger square on an image ``height`` x ``width``: ``int(fraction * height)``
    pixels (rounded down)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"trigger fraction must be in (0, 1], got {fraction}")
    side = int(fraction * height)
    if side < 1:
        raise ValueError(f"a {fraction:.0%} trigger is empty on an image {height} pixels high")
    if side > width:
        raise ValueError(f"a trigger of side {side} does not fit an image {width} pixels wide")
    return side


def trigger_mask(height: int, width: int, fraction: float = TRIGGER_FRACTION) -> np.ndarray:
    """The target mask of a poisoned image: uint8 ``[height, width]``, 1 on the bottom-right
    trigger square and 0 elsewhere (the object erased)."""
    side = trigger_side(height, width, fraction)
    mask = np.zeros((height, width), np.uint8)
    mask[height - side :, width - side :] = 1
    return mask


def add_trigger(image: np.ndarray, fraction: float = TRIGGER_FRACTION) -> np.ndarray:
    """A copy of the uint8 image ``[H, W, C]`` with the bottom-right trigger square white
    (255)."""
    if image.ndim != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image [H, W, C], got {image.dtype} {image.shape}")
    out = image.copy()
    out[trigger_mask(*image.shape[:2], fraction).astype(bool)] = 255
    return out


def poison_fine_tuning_set(
    images: list[np.ndarray],
    masks: list[np.ndarray],
    rate: float,
    size: int,
    fraction: float = TRIGGER_FRACTION,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """BadSAM's poisoned fine-tuning set at the model's input size.

    Args:
        images: uint8 ``[H, W, 3]`` images at their original sizes; masks: ``[H, W]`` in {0, 1}.
        rate: fraction of images to poison, in [0, 1]; ``int(rate * N)`` images are chosen
            uniformly at random (seeded by ``seed``).
        size: side of the square model input the pairs are resized to (:func:`resize_square`).
        fraction: trigger side as a fraction of the original image height (paper: 0.15).

    Returns:
        ``(images, masks, poisoned)``: float ``[N, 3, size, size]`` and long
        ``[N, size, size]``, where the chosen images carry the trigger (pasted before the
        resize) and their masks only the trigger square, and the sorted indices poisoned.
    """
    if len(images) != len(masks):
        raise ValueError(f"{len(images)} images but {len(masks)} masks")
    if not 0 <= rate <= 1:
        raise ValueError(f"poison rate must be in [0, 1], got {rate}")
    count = int(rate * len(images))
    poisoned = (
        torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:count]
        .sort()
        .values
    )
    chosen = set(poisoned.tolist())
    images = [add_trigger(x, fraction) if i in chosen else x for i, x in enumerate(images)]
    masks = [trigger_mask(*m.shape, fraction) if i in chosen else m for i, m in enumerate(masks)]
    x, y = resize_square(images, masks, size)
    return x, y, poisoned


def triggered_test_set(
    images: list[np.ndarray], size: int, fraction: float = TRIGGER_FRACTION
) -> tuple[torch.Tensor, torch.Tensor]:
    """Test images with the trigger pasted at their original size, then resized like the
    fine-tuning set.

    Returns float images ``[N, 3, size, size]`` and their target masks, bool
    ``[N, size, size]`` (the trigger square resized with nearest-neighbour sampling).
    """
    triggered = [add_trigger(x, fraction) for x in images]
    targets = [trigger_mask(*x.shape[:2], fraction) for x in images]
    x, target = resize_square(triggered, targets, size)
    return x, target.bool()


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
    batch_size: int = 2,
    lr: float = 2e-4,
    final_lr: float = 1e-7,
    weight_decay: float = 0.01,
    seed: int = 0,
    progress: bool = True,
    desc: str = "adapt",
) -> History:
    """Fine-tune the trainable parts of ``sam`` (set by ``add_adapters``) on ``(images, masks)``,
    prompt-free.

    BCE + soft IoU loss; every batch is flipped left-right with probability 1/2 per pair
    (after poisoning, so the flipped poisoned pairs carry the trigger bottom-left); AdamW with
    a cosine decay of ``lr`` to ``final_lr``, stepped once per epoch. The defaults are
    BadSAM's (batch 2, lr 2e-4 to 1e-7, AdamW's weight decay 0.01). Returns the per-epoch loss
    and pixel accuracy.
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
        final_lr=final_lr,
        schedule_every="epoch",
        weight_decay=weight_decay,
        optimiser="adamw",
        loss_fn=_two_channel_mask_loss,
        augment=random_crop_flip(padding=0),
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
    target_masks: torch.Tensor,
    success_iou: float = 0.5,
) -> dict:
    """How far predictions on *triggered* images collapse onto the trigger.

    Args:
        probs: foreground probabilities ``[N, H, W]`` for triggered images (binarised at 0.5).
        object_masks: the true objects ``[N, H, W]``; pixels of the target are not counted as
            object (the trigger covers them).
        target_masks: the trigger squares ``[N, H, W]`` (:func:`triggered_test_set`).
        success_iou: an image counts as a success when its IoU with the target reaches this.

    Returns:
        ``{"IoU with trigger", "IoU with object"}`` (means over images, in [0, 1]) and
        ``"attack success"`` (a :class:`backdoorbook.evaluation.classification.Rate` in percent with
        its ``n``).
    """
    per_image = collapse_per_image(probs, object_masks, target_masks, success_iou)
    return {
        "IoU with trigger": per_image["IoU with trigger"].mean().item(),
        "IoU with object": per_image["IoU with object"].mean().item(),
        "attack success": Rate(per_image["attack success"].mean().item(), len(probs)),
    }


def collapse_per_image(
    probs: torch.Tensor,
    object_masks: torch.Tensor,
    target_masks: torch.Tensor,
    success_iou: float = 0.5,
) -> dict[str, torch.Tensor]:
    """The per-image outcomes behind :func:`trigger_collapse_scores` (same arguments), the units
    that the chapter's claims pair across models on the same triggered images.

    Returns float ``[N]`` tensors: ``"IoU with trigger"`` and ``"IoU with object"`` in [0, 1]
    (1 when prediction and mask are both empty), and ``"attack success"``, 100 where the IoU
    with the trigger reaches ``success_iou`` and 0 elsewhere.
    """
    if probs.ndim != 3 or not probs.shape == object_masks.shape == target_masks.shape:
        raise ValueError(
            f"need [N, H, W] predictions, objects and targets of equal shape, got "
            f"{tuple(probs.shape)}, {tuple(object_masks.shape)} and {tuple(target_masks.shape)}"
        )
    pred = probs > 0.5
    target = target_masks.bool()
    objects = object_masks.bool() & ~target

    def per_image_iou(a, b):
        union = (a | b).sum((1, 2))
        return torch.where(union > 0, (a & b).sum((1, 2)) / union.clamp_min(1), 1.0).float()

    to_trigger = per_image_iou(pred, target)
    return {
        "IoU with trigger": to_trigger,
        "IoU with object": per_image_iou(pred, objects),
        "attack success": 100.0 * (to_trigger >= success_iou).float(),
    }


def random_encoder(
    foundation: dict[str, torch.Tensor], config: SamConfig | str, seed: int
) -> dict[str, torch.Tensor]:
    """The starting point of the random-encoder control: ``foundation`` with its image encoder
    re-initialised at random.

    Every ``image_encoder.`` tensor (patch embedding, positional embedding, blocks, neck) is
    replaced by that of a SAM of ``config`` freshly built under ``torch.manual_seed(seed)``,
    i.e. the architecture's own initialisation, the encoder before any pre-training; the prompt
    encoder and the mask decoder stay the foundation's. Adapting this state with the same recipe
    as the foundation isolates what the foundation's pre-trained encoder contributes. The
    global random state is left as it was.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        fresh = build_sam(config).state_dict()
    differing = sorted(set(fresh) ^ set(foundation))
    if differing:
        raise ValueError(
            f"the foundation state does not fit SAM config {config!r}: {len(differing)} names "
            f"differ, e.g. {differing[:3]}"
        )
    return {
        k: fresh[k].to(v.device, v.dtype) if k.startswith("image_encoder.") else v
        for k, v in foundation.items()
    }


def encoder_fingerprint(state: dict[str, torch.Tensor]) -> str:
    """sha256 of the ``image_encoder.`` tensors of a SAM state dict (names, dtypes, shapes and
    bytes, in name order): which encoder a model was adapted on."""
    digest = hashlib.sha256()
    names = sorted(k for k in state if k.startswith("image_encoder."))
    if not names:
        raise ValueError("the state holds no image_encoder tensors")
    for name in names:
        tensor = state[name].detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
