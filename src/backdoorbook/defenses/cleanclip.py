"""CleanCLIP: fine-tune a possibly backdoored CLIP on clean pairs with added in-modal
self-supervision.

Bansal et al., "CleanCLIP: Mitigating Data Poisoning Attacks in Multimodal Contrastive
Learning", ICCV 2023, arXiv 2303.03323 (authors' code: github.com/nishadsinghi/CleanCLIP).

Threat model: the defender holds the (possibly poisoned) pre-trained model and a small set of
clean image-caption pairs; they know neither the trigger nor the target. Fine-tuning minimises

    L = L_CLIP(I, T) + w * (CE(s I Ĩᵀ) + CE(s T T̃ᵀ)) / 2,

where ``L_CLIP`` is CLIP's symmetric InfoNCE, ``s`` the model's one logit scale, ``Ĩ`` and
``T̃`` the embeddings of an augmented view of each image and caption, and each in-modal term is
a single cross-entropy whose rows are the originals and whose columns are the views
(:func:`inmodal_loss`). Learning each modality on its own is meant to break the spurious
trigger-to-target-text link. ``w`` is ``inmodal_weight`` (1 in the paper).

Augmentations:

- images: torchvision's ``AutoAugment`` with its ImageNet policy (Cubuk et al., "AutoAugment:
  Learning Augmentation Strategies from Data", CVPR 2019, arXiv 1805.09501), a fresh view of
  every image each time it is drawn (:func:`autoaugment_images`), on the data's own 32 px
  images;
- captions: EDA (Wei & Zou, "EDA: Easy Data Augmentation Techniques for Boosting Performance
  on Text Classification Tasks", EMNLP 2019, arXiv 1901.11196) with WordNet 3.0 synonyms
  (:mod:`backdoorbook.data.wordnet`): one of synonym replacement, random insertion, random swap
  and random deletion, chosen uniformly, with all four rates 0.1 (:func:`eda`). Each caption
  gets one view, computed once when the loss is built and kept for every epoch
  (:func:`eda_views`).
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from ..data.wordnet import wordnet
from ..fidelity import Deviation
from ..training.augment import autoaugment_images
from ..training.contrastive import Objective, clip_loss, train_contrastive

CLEANCLIP = "nishadsinghi/CleanCLIP@d6e2f1d"
#: EDA's stop words: never chosen for synonym replacement.
STOP_WORDS = frozenset(
    """i me my myself we our ours ourselves you your yours yourself yourselves he him his
    himself she her hers herself it its itself they them their theirs themselves what which who
    whom this that these those am is are was were be been being have has had having do does did
    doing a an the and but if or because as until while of at by for with about against between
    into through during before after above below to from up down in out on off over under again
    further then once here there when where why how all any both each few more most other some
    such no nor not only own same so than too very s t can will just don should now""".split()
)
EDA_OPERATIONS = ("synonym", "insert", "swap", "delete")
LETTERS = frozenset("abcdefghijklmnopqrstuvwxyz ")


def eda_clean(text: str) -> str:
    """EDA's text cleaning: lower case, apostrophes dropped, hyphens and every other non-letter
    turned into spaces, runs of spaces collapsed, no leading or trailing space."""
    text = text.replace("’", "").replace("'", "").replace("-", " ").lower()
    return " ".join("".join(ch if ch in LETTERS else " " for ch in text).split())


@functools.cache
def wordnet_synonyms(word: str) -> tuple[str, ...]:
    """EDA's synonyms of ``word``: the cleaned lemma names of all its WordNet synsets (``_`` and
    ``-`` read as spaces, non-letters dropped), without ``word`` itself or empty names, sorted."""
    names = {
        "".join(
            ch for ch in lemma.name().replace("_", " ").replace("-", " ").lower() if ch in LETTERS
        )
        for synset in wordnet().synsets(word)
        for lemma in synset.lemmas()
    }
    names.discard(word)
    names.discard("")  # a lemma of digits only, e.g. "1" for "one"
    return tuple(sorted(names))


def _replace_synonyms(words, n, rng, synonyms):
    candidates = list(dict.fromkeys(w for w in words if w not in STOP_WORDS))
    rng.shuffle(candidates)
    replaced = 0
    for word in candidates:
        if replaced >= n:
            break
        options = synonyms(word)
        if options:
            new = rng.choice(options)
            words = [new if w == word else w for w in words]
            replaced += 1
    return " ".join(words).split(" ")


def _insert_synonyms(words, n, rng, synonyms):
    words = list(words)
    for _ in range(n):
        for _attempt in range(9):  # EDA gives up when it draws a tenth word
            options = synonyms(words[rng.randrange(len(words))])
            if options:
                words.insert(rng.randrange(len(words)), options[0])
                break
    return words


def _swap(words, n, rng):
    words = list(words)
    for _ in range(n):
        i = j = rng.randrange(len(words))
        for _attempt in range(3):  # EDA gives up when a fourth draw is needed
            j = rng.randrange(len(words))
            if j != i:
                break
        words[i], words[j] = words[j], words[i]
    return words


def _delete(words, p, rng):
    if len(words) == 1:
        return words
    kept = [w for w in words if rng.random() > p]
    return kept or [words[rng.randrange(len(words))]]


def eda(
    caption: str,
    rng: random.Random,
    alpha: float = 0.1,
    synonyms: Callable[[str], Sequence[str]] = wordnet_synonyms,
) -> str:
    """One EDA view of ``caption`` (cleaned with :func:`eda_clean`): one operation of
    :data:`EDA_OPERATIONS`, chosen uniformly, touching ``n = max(1, int(alpha * words))`` words.

    - ``"synonym"``: up to ``n`` distinct non-stop words, each replaced at every occurrence by a
      random synonym;
    - ``"insert"``: ``n`` times, the first synonym (alphabetically) of a random word that has one
      (nine tries) goes to a random position before the last word;
    - ``"swap"``: ``n`` swaps of two random positions (three tries to draw a second position);
    - ``"delete"``: every word dropped with probability ``alpha`` (one random word is kept if
      all would go).

    ``synonyms`` maps a word to its synonyms (default: WordNet 3.0, :func:`wordnet_synonyms`).
    A caption without letters is returned unchanged.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    words = eda_clean(caption).split()
    if not words:
        return caption
    n = max(1, int(alpha * len(words)))
    op = rng.choice(EDA_OPERATIONS)
    if op == "synonym":
        words = _replace_synonyms(words, n, rng, synonyms)
    elif op == "insert":
        words = _insert_synonyms(words, n, rng, synonyms)
    elif op == "swap":
        words = _swap(words, n, rng)
    else:
        words = _delete(words, alpha, rng)
    return eda_clean(" ".join(words))


def eda_views(captions: Sequence[str], seed: int = 0, alpha: float = 0.1) -> tuple[str, ...]:
    """One EDA view per caption (seeded), to be kept for every epoch of a fine-tuning run."""
    rng = random.Random(seed)
    return tuple(eda(c, rng, alpha) for c in captions)


def inmodal_loss(
    image: torch.Tensor,
    image_view: torch.Tensor,
    text: torch.Tensor,
    text_view: torch.Tensor,
    logit_scale: torch.Tensor,
) -> torch.Tensor:
    """CleanCLIP's in-modal term: the mean of CE(``s`` image · image_viewᵀ) and CE(``s`` text ·
    text_viewᵀ), each a single cross-entropy over the rows (originals), row ``i`` matching view
    ``i``."""
    if image.shape != image_view.shape or text.shape != text_view.shape:
        raise ValueError("each embedding batch needs a view batch of the same shape")
    target = torch.arange(len(image), device=image.device)
    return (
        F.cross_entropy(logit_scale * image @ image_view.T, target)
        + F.cross_entropy(logit_scale * text @ text_view.T, target)
    ) / 2


class CleanCLIPLoss:
    """The CleanCLIP loss on a batch; :meth:`terms` also returns the batch's image embeddings for
    subclasses. The EDA views of all captions are made here, once (``inmodal_weight`` > 0)."""

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
        self.caption_views = eda_views(captions, seed) if inmodal_weight > 0 else None
        self.generator = torch.Generator().manual_seed(seed)
        self.rng = random.Random(seed)

    def terms(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(loss, image_embeddings [B, D])`` for the pairs at ``index``."""
        model, scale = self.model, self.model.logit_scale()
        x = self.images[index]
        img = model.encode_image(x)
        txt = model.encode_text([self.captions[i] for i in index.tolist()])
        loss = clip_loss(img, txt, scale)
        if self.inmodal_weight > 0:
            img_view = model.encode_image(autoaugment_images(x, self.generator))
            txt_view = model.encode_text([self.caption_views[i] for i in index.tolist()])
            loss = loss + self.inmodal_weight * inmodal_loss(img, img_view, txt, txt_view, scale)
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
    """Fine-tune ``model`` in place on the clean pairs with the CLIP loss plus ``inmodal_weight`` x
    the in-modal term; returns per-epoch losses.

    ``inmodal_weight`` = 0 is plain CLIP fine-tuning on the clean pairs (the chapter's ablation).
    ``objective`` replaces the loss (TA-Cleaner passes its extended loss). The optimiser is the
    shared contrastive loop's (:func:`backdoorbook.training.contrastive.train_contrastive`).
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


_CLAIMS = (
    "cleanclip-simple-vs-patch",
    "ta-cleaner-beats-cleanclip-on-badclip",
    "ubt-beats-cleanclip",
)

DEVIATIONS = (
    Deviation(
        item="CleanCLIP fine-tuning recipe",
        authors=(
            "100,000 clean CC3M pairs, 10 epochs, batch 64, lr 1e-5 with 50 linear warm-up steps "
            "then cosine to 0; AdamW (0.9, 0.999, eps 1e-8), weight decay 0.1 except on "
            f"parameters named bn / ln / bias / logit_scale ({CLEANCLIP} README.md:82-95, "
            "src/main.py:100-111, src/parser.py:39-44, src/scheduler.py:3-15; set size from "
            "LiangSiyuan21/BadCLIP@a7b1876 cleanclip_defence.sh:12-24)"
        ),
        ours=(
            "the profile's defense set, epochs, batch and lr (ci: 1000 pairs, 5 epochs, batch 128, "
            "lr 1e-3); AdamW with weight decay 0.05 on every parameter, cosine to 0 without "
            "warm-up (the shared contrastive loop)"
        ),
        why=(
            "a miniature trained from scratch at 32 px needs a far larger learning rate than a "
            "pre-trained ViT-B/32, and the chapter's CPU budget allows a small set; every model "
            "of the chapter shares one contrastive loop, which has no warm-up or decay groups"
        ),
        claims=_CLAIMS,
        where=(
            "backdoorbook.defenses.cleanclip.cleanclip",
            "backdoorbook.training.contrastive.train_contrastive",
        ),
    ),
    Deviation(
        item="CleanCLIP image augmentation: resolution",
        authors=(
            "AutoAugment (ImageNet policy) on the PIL image as stored, then the CLIP processor's "
            f"bicubic resize and centre crop to 224 px ({CLEANCLIP} utils/augment_image.py:12-17, "
            "src/data.py:64, pkgs/openai/clip.py:67)"
        ),
        ours="AutoAugment (ImageNet policy) on the 32 px byte images the model sees, no resize",
        why="the chapter's images and model are 32 px; the policy's translations scale with size",
        claims=_CLAIMS,
        where=("backdoorbook.training.augment.autoaugment_images",),
    ),
    Deviation(
        item="CleanCLIP EDA: inserted synonym and random source",
        authors=(
            "random insertion takes synonyms[0] of list(set(...)), an arbitrary synonym that "
            "depends on Python's per-process string hashing; one global random.seed(1) "
            f"({CLEANCLIP} utils/eda.py:7, 83-92, 147-164)"
        ),
        ours="the alphabetically first synonym; a random.Random seeded per fine-tuning run",
        why="reproducible caption views from one seed",
        claims=_CLAIMS,
        where=("backdoorbook.defenses.cleanclip.eda",),
    ),
)
