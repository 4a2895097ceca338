"""Poisoned image-caption pairs for backdoors in CLIP-style models, in the protocol of the
BadCLIP repository (github.com/LiangSiyuan21/BadCLIP).

Threat model (Carlini & Terzis, "Poisoning and Backdooring Contrastive Learning", ICLR 2022,
arXiv 2106.09667): the attacker adds or alters a few image-caption pairs of the data a
contrastive model is pre-trained (or fine-tuned) on, but does not control training. A poisoned
pair is a non-target image carrying the trigger, captioned as an image of the target class. At
test time, zero-shot classification of any triggered image should return the target class.

Triggers, on float ``[N, 3, S, S]`` in [0, 1] (:func:`clip_trigger`; the protocol's settings at
224 px, scaled to ``S``):

- ``badnets`` (BadNets, arXiv 1708.06733): a noise patch, each image's per-channel mean plus
  standard normal noise (clipped to [0, 1]), of side ``S / 4``, at a random place; noise and
  place are drawn afresh for every image (:func:`noise_patch`);
- ``blended`` (arXiv 1712.05526): a blend with weight 0.2 of uniform noise drawn afresh for
  every image (:func:`noise_blend`);
- ``sig`` (arXiv 1902.11237): a horizontal sinusoid of amplitude 60/255 with 6 periods;
- ``wanet`` (arXiv 2102.10369): a fixed warp whose control grid has one node per pixel
  (k = ``S``, strength 1), a per-pixel jitter of about half a pixel;
- ``badclip`` (Liang et al., "BadCLIP: Dual-Embedding Guided Backdoor Attack on Multimodal
  Contrastive Learning", CVPR 2024, arXiv 2311.12075): a patch at the image centre whose pixels
  are optimised against the clean model (:func:`optimise_badclip_patch`) so that patched images
  already embed close to target-class captions and to target-class images, and away from their
  own clean embedding. The poisoned pairs then agree with the clean model's embedding
  geometry, so clean fine-tuning defenses have less to undo. Its poisoned pairs are captioned
  with captions of target-class images (:func:`poison_pairs` with ``captions``).

Triggers with fresh draws per image are :class:`FreshTrigger` objects: each call continues
their own seeded random stream, so the poisoned training images and the triggered test images
get independent draws, and the same calls in the same order give the same images.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from functools import partial

import torch
import torch.nn.functional as F

from ..data.captions import CaptionedImages, caption_images
from ..evaluation.zero_shot import image_embeddings, text_embeddings
from ..fidelity import Deviation
from ..runtime import eval_mode
from ..tensors import check_images
from ..training.augment import autoaugment_images
from ..training.contrastive import clip_loss
from . import triggers
from .poisoning import build_trigger, poison_classification_set

CLIP_ATTACKS = ("badnets", "blended", "sig", "wanet", "badclip")
Trigger = Callable[[torch.Tensor], torch.Tensor]
BADCLIP = "LiangSiyuan21/BadCLIP@a7b1876"


def patch_size(image_size: int) -> int:
    """Side of the BadNets / BadCLIP patch at ``image_size`` pixels: ``max(3, image_size // 4)``."""
    return max(3, image_size // 4)


def noise_patch(images: torch.Tensor, generator: torch.Generator, size: int) -> torch.Tensor:
    """Paste on every image its own ``size`` x ``size`` patch, the image's per-channel mean plus
    N(0, 1) noise clipped to [0, 1], with its top-left corner drawn uniformly in
    ``[0, S - 1 - size]`` (the protocol's range, which never touches the last row and column)."""
    check_images(images, channels=3)
    n, _, h, w = images.shape
    if not 1 <= size < min(h, w):
        raise ValueError(f"patch side must lie in 1..{min(h, w) - 1}, got {size}")
    noise = torch.randn(n, 3, size, size, generator=generator).to(images)
    patches = (images.mean((2, 3), keepdim=True) + noise).clamp(0, 1)
    tops = torch.randint(0, h - size, (n,), generator=generator).tolist()
    lefts = torch.randint(0, w - size, (n,), generator=generator).tolist()
    out = images.clone()
    for i, (top, left) in enumerate(zip(tops, lefts)):
        out[i, :, top : top + size, left : left + size] = patches[i]
    return out


def noise_blend(
    images: torch.Tensor, generator: torch.Generator, alpha: float = 0.2
) -> torch.Tensor:
    """``(1 - alpha) x + alpha u`` with uniform noise ``u`` drawn afresh for every image."""
    check_images(images, channels=3)
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    pattern = torch.rand(images.shape, generator=generator).to(images)
    return ((1 - alpha) * images + alpha * pattern).clamp(0, 1)


class FreshTrigger:
    """A trigger ``apply(images, generator, **settings)`` whose random draws come from its own
    generator, seeded once: every call continues the stream."""

    def __init__(self, apply: Callable[..., torch.Tensor], seed: int = 0, **settings):
        self.apply, self.settings = apply, settings
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return self.apply(images, self.generator, **self.settings)


def stamp_centre(images: torch.Tensor, patch: torch.Tensor) -> torch.Tensor:
    """Paste ``patch`` ``[3, p, p]`` at the centre of every image, top-left corner at
    ``int(S / 2 - p / 2)`` (differentiable in ``patch``)."""
    _, _, h, w = images.shape
    p = patch.shape[-1]
    return triggers.stamp(images, patch, int(h // 2 - p / 2), int(w // 2 - p / 2))


def clip_trigger(
    name: str, image_size: int = 32, seed: int = 0, patch: torch.Tensor | None = None
) -> Trigger:
    """The trigger ``name`` (one of :data:`CLIP_ATTACKS`) with the settings in the module docstring.

    ``badclip`` needs the optimised ``patch`` ``[3, p, p]`` from :func:`optimise_badclip_patch`.
    ``seed`` seeds the fresh draws of ``badnets`` and ``blended`` and the warp of ``wanet``.
    """
    if name == "badclip":
        if patch is None or patch.ndim != 3 or patch.shape[0] != 3:
            raise ValueError(
                "the badclip trigger needs the optimised patch [3, p, p] "
                "from optimise_badclip_patch"
            )
        return partial(stamp_centre, patch=patch.detach().clamp(0, 1))
    if name == "badnets":
        return FreshTrigger(noise_patch, seed, size=patch_size(image_size))
    if name == "blended":
        return FreshTrigger(noise_blend, seed, alpha=0.2)
    if name == "sig":
        return build_trigger("sig", image_size, delta=60 / 255, frequency=6)
    if name == "wanet":
        return build_trigger("wanet", image_size, seed=seed, k=image_size, strength=1.0)
    raise ValueError(f"unknown CLIP attack {name!r}; choose one of {', '.join(CLIP_ATTACKS)}")


def optimise_badclip_patch(
    model,
    source_images: torch.Tensor,
    target_captions: Sequence[str],
    target_images: torch.Tensor,
    *,
    size: int = 8,
    steps: int = 200,
    lr: float = 1e-3,
    batch_size: int = 64,
    triplet_weight: float = 1.0,
    margin: float = 1.0,
    aug_prob: float = 0.5,
    seed: int = 0,
) -> torch.Tensor:
    """BadCLIP's patch: minimise, over batches of patched non-target images ``x ⊕ p``,

        L_CLIP(f(x ⊕ p), g(t)) + triplet_weight * TripletMargin(f(x ⊕ p), f(x⁺), f(x'), margin),

    where ``t`` is the target caption paired with ``x`` (each source image gets one, drawn once
    from ``target_captions``), ``L_CLIP`` CLIP's symmetric InfoNCE with the model's logit scale,
    ``x⁺`` random target-class images and ``f(x')`` the clean embeddings of the batch's own
    images in shuffled order (Euclidean triplet margin loss on the normalised embeddings). The
    first term is the paper's textual-embedding consistency, the second its visual-embedding
    terms (towards target images, away from the clean images).

    Args:
        model: the (clean) :class:`~backdoorbook.models.mini_clip.ClipModel` the attacker has access
            to; it is not modified.
        source_images: non-target images ``[N, 3, S, S]`` in [0, 1] the patch is optimised on.
        target_captions: captions of target-class images (the target text).
        target_images: images of the target class ``[M, 3, S, S]`` (the positives).
        size: patch side (pixels), pasted at the centre (:func:`stamp_centre`).
        steps, lr, batch_size: Adam on the patch pixels, initialised as N(0.5, 0.25) clipped to
            [0, 1] and clipped to [0, 1] where pasted (the parameter itself is not).
        triplet_weight, margin: the triplet term (0 weight uses the text term only).
        aug_prob: probability that a step's whole batch is replaced by its AutoAugment views
            (:func:`backdoorbook.training.augment.autoaugment_images`) before patching.
    Returns the patch ``[3, size, size]`` in [0, 1].
    """
    if steps < 1 or len(source_images) < 2 or len(target_images) == 0 or not target_captions:
        raise ValueError("need steps >= 1, two source images, target images and target captions")
    if triplet_weight < 0 or not 0 <= aug_prob <= 1:
        raise ValueError(f"need triplet_weight >= 0 and 0 <= aug_prob <= 1, got {triplet_weight}")
    generator = torch.Generator().manual_seed(seed)
    device = model.mean.device
    batch_size = min(batch_size, len(source_images))
    texts = text_embeddings(model, target_captions).to(device)
    positives = image_embeddings(model, target_images).to(device)
    pairing = torch.randint(0, len(texts), (len(source_images),), generator=generator)
    patch = (
        (torch.randn(3, size, size, generator=generator) * 0.25 + 0.5)
        .clamp(0, 1)
        .to(device)
        .requires_grad_(True)
    )
    opt = torch.optim.Adam([patch], lr=lr)
    flags = [p.requires_grad for p in model.parameters()]
    model.requires_grad_(False)
    try:
        with eval_mode(model):
            scale = model.logit_scale().detach()
            for _ in range(steps):
                index = torch.randperm(len(source_images), generator=generator)[:batch_size]
                x = source_images[index].to(device)
                if float(torch.rand(1, generator=generator)) < aug_prob:
                    x = autoaugment_images(x, generator)
                with torch.no_grad():
                    clean = model.encode_image(x)
                emb = model.encode_image(stamp_centre(x, patch.clamp(0, 1)))
                if len(positives) >= batch_size:  # distinct positives, as the authors draw them
                    draw = torch.randperm(len(positives), generator=generator)[:batch_size]
                else:
                    draw = torch.randint(0, len(positives), (batch_size,), generator=generator)
                shuffled = torch.randperm(batch_size, generator=generator)
                loss = clip_loss(emb, texts[pairing[index]], scale) + triplet_weight * (
                    F.triplet_margin_loss(
                        emb, positives[draw.to(device)], clean[shuffled], margin=margin
                    )
                )
                opt.zero_grad()
                loss.backward()
                opt.step()
    finally:
        for p, flag in zip(model.parameters(), flags):
            p.requires_grad_(flag)
    return patch.detach().clamp(0, 1).cpu()


def poison_pairs(
    data: CaptionedImages,
    trigger: Trigger,
    *,
    count: int,
    target: int,
    seed: int = 0,
    captions: Sequence[str] | None = None,
) -> tuple[CaptionedImages, torch.Tensor]:
    """Replace ``count`` random non-target pairs by triggered images captioned as the ``target``
    class.

    Without ``captions`` the poisoned captions use the training templates and image-derived
    attributes of clean ones (computed on the triggered image), so only the class name betrays
    them; with ``captions`` (BadCLIP: captions of target-class images) each poisoned pair gets a
    random one of them. Returns the poisoned set (labels of poisoned pairs set to ``target``,
    as their captions say) and the sorted indices of the poisoned pairs.
    """
    if not 1 <= count <= len(data):
        raise ValueError(f"count must lie in 1..{len(data)}, got {count}")
    if captions is not None and not captions:
        raise ValueError("captions, when given, must not be empty")
    poisoned = poison_classification_set(
        data.images, data.labels, trigger, rate=count / len(data), target=target, seed=seed
    )
    index = poisoned.indices
    if captions is None:
        new = caption_images(
            poisoned.images[index], poisoned.labels[index], data.classes, seed=seed + 1
        )
    else:
        rng = random.Random(seed + 1)
        new = [rng.choice(list(captions)) for _ in range(len(index))]
    all_captions = list(data.captions)
    for i, caption in zip(index.tolist(), new):
        all_captions[i] = caption
    return (
        CaptionedImages(poisoned.images, poisoned.labels, tuple(all_captions), data.classes),
        index,
    )


#: Claims over the simple triggers (claim 3 is on badclip only); every claim involves badclip.
_SIMPLE_CLAIMS = (
    "poisoning-high-asr-low-ca-loss",
    "cleanclip-simple-vs-patch",
    "ubt-beats-cleanclip",
)
_ALL_CLAIMS = (*_SIMPLE_CLAIMS, "ta-cleaner-beats-cleanclip-on-badclip")

DEVIATIONS = (
    Deviation(
        item="BadCLIP objective: which variant",
        authors=(
            "the loss terms are picked by substrings of the run name: the cross-modal InfoNCE for "
            "'nature' / 'template' / 'vqa', a TripletMarginLoss (margin from '_XX_tri', else 1.0; "
            "weight int(name[-3:])) for 'pos' + 'neg'; the README's --name=badCLIP picks none, so "
            f"the reported patch's variant is unknown ({BADCLIP} src/embeding_optimize_patch.py:"
            "134-173, README.md:38)"
        ),
        ours=(
            "InfoNCE towards target captions plus the triplet term (target-image positives, "
            "shuffled clean copies as negatives), the two parts the paper describes; margin and "
            "weight from the profile (ci: margin 1.0, weight 1)"
        ),
        why="the repository does not record the configuration behind its reported patch",
        claims=_ALL_CLAIMS,
        where=("backdoorbook.attacks.clip_poison.optimise_badclip_patch",),
    ),
    Deviation(
        item="BadCLIP patch: size, steps and model",
        authors=(
            "16x16 px at 224 px (0.5 % of the image), Adam lr 1e-3 for 50 epochs of 156 batches "
            "of 64 (about 7,800 steps) on 10,000 pairs, against the frozen OpenAI RN50 "
            f"({BADCLIP} README.md:38, src/parser.py:14, src/embeding_optimize_patch.py:297)"
        ),
        ours=(
            "8x8 px at 32 px (6.25 %, one ViT token's area) against the clean miniature; batches "
            "of 64; ci: 400 steps at lr 0.01 (paper profile: 7,800 at 1e-3)"
        ),
        why=(
            "a half-token patch was barely learned by the miniature in a few epochs; the CPU "
            "budget allows a few hundred steps, so the step size is larger"
        ),
        claims=_ALL_CLAIMS,
        where=(
            "backdoorbook.attacks.clip_poison.optimise_badclip_patch",
            "backdoorbook.attacks.clip_poison.patch_size",
        ),
    ),
    Deviation(
        item="BadCLIP patch: caption augmentation",
        authors=(
            "with probability eda_prob (0.1) the EDA caption's attention mask replaces the "
            "caption's, while its token ids are kept "
            f"({BADCLIP} src/embeding_optimize_patch.py:321-326)"
        ),
        ours="no caption augmentation while optimising the patch",
        why=(
            "open_clip's text tower takes no attention mask, and the authors' swap does not "
            "change the words"
        ),
        claims=_ALL_CLAIMS,
        where=("backdoorbook.attacks.clip_poison.optimise_badclip_patch",),
    ),
    Deviation(
        item="BadNets patch: size and clipping",
        authors=(
            "16x16 px at 224 px (0.5 % of the image); the noise is not clipped before "
            f"ToPILImage's byte conversion ({BADCLIP} backdoor/utils.py:53-56, 100-105, 135; "
            "create_data.sh:12)"
        ),
        ours="side S/4 = 8 px at 32 px (6.25 %, one ViT token's area); noise clipped to [0, 1]",
        why=(
            "0.5 % of a 32 px image is a 2 px patch; a fixed half-token patch was barely learned "
            "by the miniature in a few epochs; the library's triggers keep images in [0, 1]"
        ),
        claims=_SIMPLE_CLAIMS,
        where=(
            "backdoorbook.attacks.clip_poison.noise_patch",
            "backdoorbook.attacks.clip_poison.patch_size",
        ),
    ),
    Deviation(
        item="WaNet grid at 32 px",
        authors=(
            "k = 224, s = 1, grid_rescale 1 at 224 px: a per-pixel random field, loaded from "
            f"the saved noise_grid file or drawn once ({BADCLIP} backdoor/utils.py:23-51)"
        ),
        ours="k = S = 32, strength 1 at 32 px: the same per-pixel field (mean shift ≈ 0.5 px)",
        why="the chapter's images are 32 px; k = image size keeps the field per-pixel",
        claims=_SIMPLE_CLAIMS,
        where=("backdoorbook.attacks.clip_poison.clip_trigger",),
    ),
    Deviation(
        item="Poisoning protocol: rate, target, pool, model",
        authors=(
            "1,500 poisoned pairs in 500,000 (0.3 %), target 'banana', poisoned images drawn "
            "from all pairs; OpenAI RN50 fine-tuned 10 epochs at lr 1e-6 on the poisoned set "
            f"({BADCLIP} create_data.sh:12-27, backdoor/create_backdoor_data.py:91-94, "
            "README.md:43-48)"
        ),
        ours=(
            "the profile's poison count in a continued-training set of the clean miniature (ci: "
            "150 of 3,000, 5 %); target 'hotdog'; non-target images only"
        ),
        why=(
            "the backdoor must be learned in a few epochs of continued training; 'banana' is "
            "not among the 110 classes of the captioned data"
        ),
        claims=_ALL_CLAIMS,
        where=("backdoorbook.attacks.clip_poison.poison_pairs",),
    ),
    Deviation(
        item="Poison captions of the classic attacks",
        authors=(
            "a random one of the 80 ImageNet templates with the target name, the templates the "
            f"zero-shot evaluation also uses ({BADCLIP} backdoor/create_backdoor_data.py:64-65, "
            "136, 149)"
        ),
        ours=(
            "the training-caption templates with the triggered image's colour and brightness; "
            "zero-shot prompts are held out from every training caption"
        ),
        why="so that no defense or training caption ever contains an evaluation prompt",
        claims=_ALL_CLAIMS,
        where=("backdoorbook.attacks.clip_poison.poison_pairs",),
    ),
    Deviation(
        item="Zero-shot prompts",
        authors=(
            "the 80 OpenAI ImageNet templates, prompt-ensembled "
            f"({BADCLIP} data/ImageNet1K/validation/classes.py:6, src/evaluate.py:60-83)"
        ),
        ours=(
            "5 of those 80 ('a photo of the {c}.', 'a bright photo of the {c}.', 'a dark photo "
            "of the {c}.', 'a close-up photo of a {c}.', 'a low resolution photo of the {c}.'), "
            "none equal to a training caption or a TA-Cleaner sub-caption"
        ),
        why=(
            "most of the 80 use words the miniature's text tower never saw; these five use "
            "caption words in combinations no training caption or defense uses"
        ),
        claims=_ALL_CLAIMS,
        where=(
            "backdoorbook.evaluation.zero_shot.zero_shot_classifier",
            "backdoorbook.data.captions.ZERO_SHOT_TEMPLATES",
        ),
    ),
    Deviation(
        item="ASR denominator",
        authors=(
            "every triggered validation image, target-class images included "
            f"({BADCLIP} src/data.py:253-258)"
        ),
        ours="triggered test images whose true class is not the target",
        why="a target-class image classified as the target is not an attack success",
        claims=_ALL_CLAIMS,
        where=("backdoorbook.evaluation.zero_shot.zero_shot_asr",),
    ),
)
