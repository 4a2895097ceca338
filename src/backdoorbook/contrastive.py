"""Contrastive image-text training and zero-shot evaluation for the miniature CLIP.

- :func:`clip_loss`: CLIP's symmetric InfoNCE over a batch of matching pairs (Radford et al.,
  ICML 2021, arXiv 2103.00020).
- :func:`train_contrastive`: the one training loop of chapter 4. It draws seeded batches of
  pair indices and minimises an *objective* ``objective(index, epoch) -> loss``; the objective
  closes over the data, so plain CLIP training, poisoned training and every defense (CleanCLIP,
  TA-Cleaner, UBT) share the loop and differ only in their objective.
- :func:`zero_shot_classifier`, :func:`zero_shot_accuracy`, :func:`zero_shot_asr`: zero-shot
  classification with a prompt ensemble (each class embedding is the normalised mean of its
  normalised template embeddings, as in CLIP), top-1 clean accuracy (CA) and top-k attack
  success rate (ASR: triggered non-target images whose top-k classes contain the target).

Images are float ``[N, 3, S, S]`` in [0, 1]; the model is a :class:`~backdoorbook.models.mini_clip.ClipModel`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from tqdm import tqdm

from .data.captions import ZERO_SHOT_TEMPLATES
from .metrics import Rate, accuracy
from .runtime import progress_enabled

Objective = Callable[[torch.Tensor, int], torch.Tensor]


def clip_loss(image_embeddings: torch.Tensor, text_embeddings: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """Symmetric cross-entropy of the scaled similarity matrix ``[B, B]``; pair ``i`` matches text ``i``."""
    if image_embeddings.shape != text_embeddings.shape:
        raise ValueError(f"embeddings differ in shape: {tuple(image_embeddings.shape)} vs "
                         f"{tuple(text_embeddings.shape)}")
    logits = logit_scale * image_embeddings @ text_embeddings.T
    target = torch.arange(len(logits), device=logits.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def clip_objective(model, images: torch.Tensor, captions: Sequence[str]) -> Objective:
    """The plain CLIP objective on the pairs ``(images[i], captions[i])``."""
    if len(images) != len(captions):
        raise ValueError(f"{len(images)} images but {len(captions)} captions")

    def objective(index: torch.Tensor, epoch: int) -> torch.Tensor:
        return clip_loss(model.encode_image(images[index]), model.encode_text([captions[i] for i in index.tolist()]),
                         model.logit_scale())
    return objective


def train_contrastive(model, n: int, objective: Objective, *, epochs: int, batch_size: int = 256, lr: float = 1e-3,
                      weight_decay: float = 0.05, seed: int = 0, progress: bool = True,
                      desc: str = "contrastive training") -> list[float]:
    """Minimise ``objective`` over ``epochs`` passes of seeded random batches of the indices ``0..n-1``.

    AdamW with a cosine decay of ``lr`` to zero over all steps (last batch of an epoch may be
    smaller). Returns the mean loss of each epoch. The model is left in eval mode.
    """
    if n < 2 or epochs < 1 or batch_size < 2:
        raise ValueError(f"need n >= 2, epochs >= 1 and batch_size >= 2, got {n}, {epochs}, {batch_size}")
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    steps_per_epoch = -(-n // batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * steps_per_epoch)
    generator = torch.Generator().manual_seed(seed)
    losses = []
    model.train()
    bar = tqdm(total=epochs * steps_per_epoch, desc=desc, disable=not progress_enabled(progress))
    for epoch in range(epochs):
        order, total = torch.randperm(n, generator=generator), 0.0
        for start in range(0, n, batch_size):
            index = order[start:start + batch_size]
            if len(index) < 2:
                continue
            loss = objective(index, epoch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            schedule.step()
            total += loss.item() * len(index)
            bar.update()
        losses.append(total / n)
    bar.close()
    model.eval()
    return losses


@torch.no_grad()
def zero_shot_classifier(model, classes: Sequence[str], templates: Sequence[str] = ZERO_SHOT_TEMPLATES) -> torch.Tensor:
    """Class embeddings ``[K, D]``: per class, the normalised mean of its prompts' normalised text embeddings."""
    if not templates:
        raise ValueError("need at least one template")
    was_training = model.training
    model.eval()
    prompts = [t.format(c=c) for c in classes for t in templates]
    embeddings = model.encode_text(prompts).view(len(classes), len(templates), -1).mean(1)
    model.train(was_training)
    return F.normalize(embeddings, dim=-1)


@torch.no_grad()
def image_embeddings(model, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Normalised image embeddings ``[N, D]`` (CPU), computed in eval mode in batches."""
    was_training = model.training
    model.eval()
    out = torch.cat([model.encode_image(images[s:s + batch_size]).cpu() for s in range(0, len(images), batch_size)])
    model.train(was_training)
    return out


def zero_shot_logits(model, images: torch.Tensor, classifier: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Cosine similarities ``[N, K]`` of each image to each class embedding."""
    return image_embeddings(model, images, batch_size) @ classifier.cpu().T


def zero_shot_accuracy(model, images: torch.Tensor, labels: torch.Tensor, classifier: torch.Tensor) -> Rate:
    """Top-1 zero-shot accuracy (CA, percent) on clean images."""
    return accuracy(zero_shot_logits(model, images, classifier).argmax(1), labels)


def zero_shot_asr(model, triggered: torch.Tensor, labels: torch.Tensor, classifier: torch.Tensor, target: int,
                  ks: Sequence[int] = (1, 10)) -> dict[int, Rate]:
    """Top-k ASR for each ``k`` in ``ks``: share of triggered images with true label != ``target`` whose
    ``k`` most similar classes include ``target``."""
    if len(triggered) != len(labels):
        raise ValueError(f"{len(triggered)} images but {len(labels)} labels")
    keep = labels != target
    if not keep.any():
        raise ValueError(f"every label is the target {target}: ASR has an empty denominator")
    ranks = zero_shot_logits(model, triggered[keep], classifier).argsort(1, descending=True)
    n = int(keep.sum())
    return {k: Rate(100.0 * (ranks[:, :k] == target).any(1).sum().item() / n, n) for k in ks}


def zero_shot_backdoor_scores(model, images: torch.Tensor, labels: torch.Tensor, triggered: torch.Tensor,
                              classes: Sequence[str], target: int) -> dict[str, Rate]:
    """``{"CA": top-1 accuracy on clean images, "ASR@1", "ASR@10": top-1 / top-10 ASR on their triggered
    copies}``, with the class embeddings of ``model``'s own text tower (prompt ensemble)."""
    classifier = zero_shot_classifier(model, classes)
    asr = zero_shot_asr(model, triggered, labels, classifier, target, ks=(1, 10))
    return {"CA": zero_shot_accuracy(model, images, labels, classifier), "ASR@1": asr[1], "ASR@10": asr[10]}
