"""Zero-shot classification with a CLIP-style model: class embeddings, CA and top-k ASR.

Zero-shot classification uses a prompt ensemble (each class embedding is the normalised mean
of its normalised template embeddings, as in CLIP, Radford et al., ICML 2021, arXiv
2103.00020). CA is the top-1 accuracy on clean images; the top-k attack success rate (ASR) is
the share of triggered non-target images whose ``k`` most similar classes contain the target.
The per-image outcomes behind these rates (:func:`zero_shot_outcomes`) let two models be
compared on the same images, as the chapter's paired intervals need.

Images are float ``[N, 3, S, S]`` in [0, 1]; the model is a
:class:`~backdoorbook.models.mini_clip.ClipModel`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ..data.captions import ZERO_SHOT_TEMPLATES
from ..runtime import batched, eval_mode
from .classification import Rate


@torch.no_grad()
def zero_shot_classifier(
    model, classes: Sequence[str], templates: Sequence[str] = ZERO_SHOT_TEMPLATES
) -> torch.Tensor:
    """Class embeddings ``[K, D]``: per class, the normalised mean of its prompts' normalised text
    embeddings."""
    if not templates:
        raise ValueError("need at least one template")
    prompts = [t.format(c=c) for c in classes for t in templates]
    with eval_mode(model):
        embeddings = model.encode_text(prompts).view(len(classes), len(templates), -1).mean(1)
    return F.normalize(embeddings, dim=-1)


def image_embeddings(model, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Normalised image embeddings ``[N, D]`` (CPU), computed in eval mode in batches."""
    return batched(model, images, batch_size, apply=lambda m, x: m.encode_image(x))


@torch.no_grad()
def text_embeddings(model, captions: Sequence[str], batch_size: int = 512) -> torch.Tensor:
    """Normalised caption embeddings ``[N, D]`` (CPU), computed in eval mode in batches."""
    with eval_mode(model):
        return torch.cat(
            [
                model.encode_text(list(captions[s : s + batch_size])).cpu()
                for s in range(0, len(captions), batch_size)
            ]
        )


def zero_shot_logits(
    model, images: torch.Tensor, classifier: torch.Tensor, batch_size: int = 512
) -> torch.Tensor:
    """Cosine similarities ``[N, K]`` of each image to each class embedding."""
    return image_embeddings(model, images, batch_size) @ classifier.cpu().T


def zero_shot_correct(
    model, images: torch.Tensor, labels: torch.Tensor, classifier: torch.Tensor
) -> torch.Tensor:
    """Per image, whether its top-1 zero-shot class is its label (bool ``[N]``)."""
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    return zero_shot_logits(model, images, classifier).argmax(1) == labels.cpu()


def zero_shot_accuracy(
    model, images: torch.Tensor, labels: torch.Tensor, classifier: torch.Tensor
) -> Rate:
    """Top-1 zero-shot accuracy (CA, percent) on clean images."""
    return hit_rate(zero_shot_correct(model, images, labels, classifier))


def zero_shot_target_hits(
    model,
    triggered: torch.Tensor,
    labels: torch.Tensor,
    classifier: torch.Tensor,
    target: int,
    ks: Sequence[int] = (1, 10),
) -> dict[int, torch.Tensor]:
    """For each ``k`` in ``ks``, per triggered image with true label != ``target`` (in order),
    whether its ``k`` most similar classes include ``target`` (bool ``[M]``)."""
    if len(triggered) != len(labels):
        raise ValueError(f"{len(triggered)} images but {len(labels)} labels")
    keep = labels != target
    if not keep.any():
        raise ValueError(f"every label is the target {target}: ASR has an empty denominator")
    ranks = zero_shot_logits(model, triggered[keep], classifier).argsort(1, descending=True)
    return {k: (ranks[:, :k] == target).any(1) for k in ks}


def hit_rate(hits: torch.Tensor) -> Rate:
    """The share (percent) of true entries of a bool ``[N]`` tensor, with its denominator."""
    if hits.numel() == 0:
        raise ValueError("a rate over zero samples is undefined")
    return Rate(100.0 * hits.sum().item() / hits.numel(), hits.numel())


def zero_shot_asr(
    model,
    triggered: torch.Tensor,
    labels: torch.Tensor,
    classifier: torch.Tensor,
    target: int,
    ks: Sequence[int] = (1, 10),
) -> dict[int, Rate]:
    """Top-k ASR for each ``k`` in ``ks``: share of triggered images with true label != ``target``
    whose ``k`` most similar classes include ``target``."""
    hits = zero_shot_target_hits(model, triggered, labels, classifier, target, ks)
    return {k: hit_rate(h) for k, h in hits.items()}


def zero_shot_outcomes(
    model,
    images: torch.Tensor,
    labels: torch.Tensor,
    triggered: torch.Tensor,
    classes: Sequence[str],
    target: int,
) -> dict[str, torch.Tensor]:
    """Per-image outcomes, with the class embeddings of ``model``'s own text tower (prompt
    ensemble): ``{"CA": bool [N], top-1 correct on each clean image; "ASR@1", "ASR@10": bool
    [M], target among the top 1 / 10 classes of each triggered non-target image}``."""
    classifier = zero_shot_classifier(model, classes)
    hits = zero_shot_target_hits(model, triggered, labels, classifier, target, ks=(1, 10))
    return {
        "CA": zero_shot_correct(model, images, labels, classifier),
        "ASR@1": hits[1],
        "ASR@10": hits[10],
    }


def zero_shot_backdoor_scores(
    model,
    images: torch.Tensor,
    labels: torch.Tensor,
    triggered: torch.Tensor,
    classes: Sequence[str],
    target: int,
) -> dict[str, Rate]:
    """``{"CA": top-1 accuracy on clean images, "ASR@1", "ASR@10": top-1 / top-10 ASR on their
    triggered copies}``: the rates of :func:`zero_shot_outcomes`."""
    outcomes = zero_shot_outcomes(model, images, labels, triggered, classes, target)
    return {name: hit_rate(hits) for name, hits in outcomes.items()}
