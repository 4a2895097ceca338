"""UBT: find suspicious pairs by deliberate over-fitting, then unlearn them token by token.

Liang et al., "Unlearning Backdoor Threats: Enhancing Backdoor Defense in Multimodal
Contrastive Learning via Local Token Unlearning", 2024, arXiv 2403.16257 (no public code at
the time of writing).

Threat model: the defender holds the possibly poisoned model, the (possibly poisoned)
training pairs it was trained on, and a small clean set; trigger and target are unknown.

1. Discovery (:func:`suspicious_pairs`): fine-tune a *copy* of the model on the training
   pairs for ``overfit_epochs``; each epoch trains only on the ``focus_fraction`` of pairs with
   the lowest image-caption similarity (the abstract's "prioritising weak-similarity pairs"),
   so clean pairs catch up while backdoor pairs, which the trigger shortcut already fits,
   stay at the top. The ``n_suspects`` pairs with the highest similarity under the
   over-fitted copy are the suspects.
2. Token localisation (:func:`localise_tokens`): for each suspect, the caption tokens whose
   removal lowers the image-caption similarity most (leave-one-out, under the model being
   cleaned) — ``tokens_per_caption`` of them (``None``: the whole caption).
3. Unlearning (:func:`ubt`): fine-tune the model with a retain term (CLIP loss on the clean
   set) plus ``forget_weight`` x mean ReLU(cos(suspect image, localised caption) - ``margin``),
   which pushes the suspect images away from the responsible tokens only.

The public description leaves all sizes and the forgetting objective open; the defaults above
are this chapter's choices, and the chapter ablates ``tokens_per_caption``.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..evaluation.zero_shot import image_embeddings, text_embeddings
from ..training.contrastive import clip_objective, train_contrastive


@torch.no_grad()
def pair_similarity(
    model, images: torch.Tensor, captions: Sequence[str], batch_size: int = 512
) -> torch.Tensor:
    """Cosine similarity ``[N]`` of each image with its own caption."""
    return (
        image_embeddings(model, images, batch_size) * text_embeddings(model, captions, batch_size)
    ).sum(1)


def suspicious_pairs(
    model,
    images: torch.Tensor,
    captions: Sequence[str],
    *,
    n_suspects: int = 32,
    overfit_epochs: int = 3,
    focus_fraction: float = 0.5,
    lr: float = 1e-3,
    batch_size: int = 128,
    seed: int = 0,
    progress: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(suspect indices [n_suspects], similarity [N] under the over-fitted copy)``; ``model`` is
    not modified."""
    if not 0 < focus_fraction <= 1 or not 1 <= n_suspects <= len(images):
        raise ValueError(f"need 0 < focus_fraction <= 1 and 1 <= n_suspects <= {len(images)}")
    probe = copy.deepcopy(model)
    for epoch in range(overfit_epochs):
        weakest = pair_similarity(probe, images, captions).argsort()[
            : max(2, round(focus_fraction * len(images)))
        ]
        train_contrastive(
            probe,
            len(weakest),
            clip_objective(probe, images[weakest], [captions[i] for i in weakest.tolist()]),
            epochs=1,
            batch_size=batch_size,
            lr=lr,
            seed=seed + epoch,
            progress=progress,
            desc=f"UBT over-fitting {epoch + 1}/{overfit_epochs}",
        )
    similarity = pair_similarity(probe, images, captions)
    return similarity.argsort(descending=True)[:n_suspects].sort().values, similarity


@torch.no_grad()
def localise_tokens(
    model, images: torch.Tensor, captions: Sequence[str], tokens_per_caption: int | None = 2
) -> torch.Tensor:
    """Token ids ``[N, L]`` keeping, per caption, only start, end and the ``tokens_per_caption``
    content tokens whose removal lowers the image-caption similarity most (``None``: every token
    kept)."""
    tokens = model.tokenize(captions).cpu()
    if tokens_per_caption is None:
        return tokens
    if tokens_per_caption < 1:
        raise ValueError(f"tokens_per_caption must be >= 1 or None, got {tokens_per_caption}")
    img = image_embeddings(model, images)
    out = torch.zeros_like(tokens)
    for row, (ids, emb) in enumerate(zip(tokens, img)):
        length = int((ids != 0).sum())
        content = list(range(1, length - 1))
        variants = torch.stack(
            [torch.cat([ids[:i], ids[i + 1 :], ids.new_zeros(1)]) for i in content] + [ids]
        )
        sims = model.encode_text(variants).cpu() @ emb
        drop = sims[-1] - sims[:-1]
        keep = sorted(
            content[i] for i in drop.argsort(descending=True)[:tokens_per_caption].tolist()
        )
        kept = torch.cat([ids[:1], ids[keep], ids[length - 1 : length]])
        out[row, : len(kept)] = kept
    return out


class UnlearnLoss:
    """Retain (CLIP loss on a clean batch) + forget (hinge on suspect image / localised caption
    similarity)."""

    def __init__(
        self,
        model,
        clean_images: torch.Tensor,
        clean_captions: Sequence[str],
        suspect_images: torch.Tensor,
        suspect_tokens: torch.Tensor,
        *,
        forget_weight: float = 1.0,
        margin: float = 0.0,
    ):
        self.model, self.clean_images, self.clean_captions = model, clean_images, clean_captions
        self.retain = clip_objective(model, clean_images, clean_captions)
        self.suspect_images, self.suspect_tokens = suspect_images, suspect_tokens
        self.forget_weight, self.margin = forget_weight, margin

    def __call__(self, index: torch.Tensor, epoch: int) -> torch.Tensor:
        cos = (
            self.model.encode_image(self.suspect_images)
            * self.model.encode_text(self.suspect_tokens)
        ).sum(1)
        return self.retain(index, epoch) + self.forget_weight * F.relu(cos - self.margin).mean()


@dataclass(frozen=True)
class UBTResult:
    """What UBT did: ``suspects`` (indices into the training pairs), their localised ``tokens``,
    the over-fitted ``similarity`` of every training pair and the unlearning ``losses`` per
    epoch."""

    suspects: torch.Tensor
    tokens: torch.Tensor
    similarity: torch.Tensor
    losses: list[float]


def ubt(
    model,
    train_images: torch.Tensor,
    train_captions: Sequence[str],
    clean_images: torch.Tensor,
    clean_captions: Sequence[str],
    *,
    n_suspects: int = 32,
    overfit_epochs: int = 3,
    focus_fraction: float = 0.5,
    tokens_per_caption: int | None = 2,
    forget_weight: float = 1.0,
    margin: float = 0.0,
    epochs: int = 3,
    batch_size: int = 128,
    lr: float = 5e-4,
    seed: int = 0,
    progress: bool = True,
) -> UBTResult:
    """Run UBT on ``model`` in place (discovery on the training pairs, unlearning with the clean
    retain set)."""
    suspects, similarity = suspicious_pairs(
        model,
        train_images,
        train_captions,
        n_suspects=n_suspects,
        overfit_epochs=overfit_epochs,
        focus_fraction=focus_fraction,
        batch_size=batch_size,
        seed=seed,
        progress=progress,
    )
    suspect_images = train_images[suspects]
    tokens = localise_tokens(
        model, suspect_images, [train_captions[i] for i in suspects.tolist()], tokens_per_caption
    )
    objective = UnlearnLoss(
        model,
        clean_images,
        clean_captions,
        suspect_images,
        tokens,
        forget_weight=forget_weight,
        margin=margin,
    )
    losses = train_contrastive(
        model,
        len(clean_images),
        objective,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        progress=progress,
        desc="UBT unlearning",
    )
    return UBTResult(suspects, tokens, similarity, losses)


def discovery_summary(
    result: UBTResult, poison_index: torch.Tensor, captions: Sequence[str], model
) -> dict:
    """How UBT's discovery did against the ground truth ``poison_index`` (unknown to the defender).

    Returns the number of suspects, how many are truly poisoned, and, for one suspect (the
    first poisoned one where there is one), its localised tokens and its full caption.
    """
    hit = torch.isin(result.suspects, poison_index)
    row = int(torch.nonzero(hit)[0]) if hit.any() else 0
    return {
        "suspects": len(result.suspects),
        "poisoned among suspects": int(hit.sum()),
        "localised tokens of one suspect": model.decode(result.tokens[row]),
        "that suspect is poisoned": bool(hit[row]),
        "its caption": captions[int(result.suspects[row])],
    }
