"""Zero-shot classification with a CLIP-style model: class embeddings, CA and top-k ASR.

Zero-shot classification uses a prompt ensemble (each class embedding is the normalised mean
of its normalised template embeddings, as in CLIP, Radford et al., ICML 2021, arXiv
2103.00020). CA is the top-1 accuracy on clean images; the top-k attack success rate (ASR) is
the share of triggered non-target images whose ``k`` most similar classes contain the target.

Images are float ``[N, 3, S, S]`` in [0, 1]; the model is a
:class:`~backdoorbook.models.mini_clip.ClipModel`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ..data.captions import ZERO_SHOT_TEMPLATES
from ..runtime import batched, eval_mode
from .classification import Rate, accuracy


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


def zero_shot_accuracy(
    model, images: torch.Tensor, labels: torch.Tensor, classifier: torch.Tensor
) -> Rate:
    """Top-1 zero-shot accuracy (CA, percent) on clean images."""
    return accuracy(zero_shot_logits(model, images, classifier).argmax(1), labels)


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
    if len(triggered) != len(labels):
        raise ValueError(f"{len(triggered)} images but {len(labels)} labels")
    keep = labels != target
    if not keep.any():
        raise ValueError(f"every label is the target {target}: ASR has an empty denominator")
    ranks = zero_shot_logits(model, triggered[keep], classifier).argsort(1, descending=True)
    n = int(keep.sum())
    return {k: Rate(100.0 * (ranks[:, :k] == target).any(1).sum().item() / n, n) for k in ks}


def zero_shot_backdoor_scores(
    model,
    images: torch.Tensor,
    labels: torch.Tensor,
    triggered: torch.Tensor,
    classes: Sequence[str],
    target: int,
) -> dict[str, Rate]:
    """``{"CA": top-1 accuracy on clean images, "ASR@1", "ASR@10": top-1 / top-10 ASR on their
    triggered copies}``, with the class embeddings of ``model``'s own text tower (prompt
    ensemble)."""
    classifier = zero_shot_classifier(model, classes)
    asr = zero_shot_asr(model, triggered, labels, classifier, target, ks=(1, 10))
    return {
        "CA": zero_shot_accuracy(model, images, labels, classifier),
        "ASR@1": asr[1],
        "ASR@10": asr[10],
    }
