"""Baseline++ fine-tuning: a cosine classifier trained on frozen support features.

The protocol of Chen et al., "A Closer Look at Few-shot Classification" (ICLR 2019,
arXiv:1904.04232), which FLBA (AAAI 2024, arXiv:2401.01377) attacks:
:func:`finetune_cosine_classifier` trains a :class:`~backdoorbook.models.heads.CosineClassifier`
(the logit of class c is ``scale * cos(f(x), w_c)``) on frozen support features with Adam
(lr 1e-2, 100 passes over the support set in batches of 4).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..models.heads import CosineClassifier
from .optim import build_optimiser, epoch_batches


def finetune_cosine_classifier(
    features: torch.Tensor,
    labels: torch.Tensor,
    n_way: int,
    *,
    epochs: int = 100,
    batch_size: int = 4,
    lr: float = 1e-2,
    scale: float = 2.0,
    seed: int = 0,
) -> CosineClassifier:
    """Baseline++ fine-tuning on frozen support ``features`` ``[S, D]`` with labels ``[S]`` in
    0..n_way-1.

    ``epochs`` passes over the support set in shuffled batches of ``batch_size`` with Adam
    (the authors' 100 x batch 4 at lr 1e-2). Returns the trained head in eval mode.
    """
    return finetune_cosine_classifiers(
        features[None],
        labels[None],
        n_way,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        scale=scale,
        seed=seed,
    )[0]


def finetune_cosine_classifiers(
    features: torch.Tensor,
    labels: torch.Tensor,
    n_way: int,
    *,
    epochs: int = 100,
    batch_size: int = 4,
    lr: float = 1e-2,
    scale: float = 2.0,
    seed: int = 0,
) -> list[CosineClassifier]:
    """:func:`finetune_cosine_classifier` on ``C`` support sets at once: features ``[C, S, D]``,
    labels ``[C, S]``.

    Every head starts from the same seeded initialisation and sees the same batch order; the
    loss is a sum over heads and Adam acts elementwise, so each head is trained exactly as it
    would be alone (up to float rounding), only faster.
    """
    if features.ndim != 3 or labels.shape != features.shape[:2]:
        raise ValueError(
            f"need features [C, S, D] and labels [C, S], got {tuple(features.shape)} and "
            f"{tuple(labels.shape)}"
        )
    if int(labels.min()) < 0 or int(labels.max()) >= n_way:
        raise ValueError(f"labels must lie in 0..{n_way - 1}")
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be >= 1, got {epochs} and {batch_size}")
    heads, support = features.shape[0], features.shape[1]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        init = CosineClassifier(features.shape[2], n_way, scale).weight.detach()
    weight = nn.Parameter(init.to(features.device).repeat(heads, 1, 1))  # [C, n_way, D]
    optimiser, _ = build_optimiser([weight], name="adam", lr=lr, schedule="constant")
    generator = torch.Generator().manual_seed(seed)
    features, labels = F.normalize(features.detach(), dim=2), labels.to(features.device)
    for _ in range(epochs):
        for index in epoch_batches(support, batch_size, generator):
            index = index.to(features.device)
            logits = scale * torch.einsum(
                "cbd,ckd->cbk", features[:, index], F.normalize(weight, dim=2)
            )
            loss = F.cross_entropy(
                logits.flatten(0, 1), labels[:, index].flatten(), reduction="sum"
            ) / len(index)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
    out = []
    for w in weight.detach():
        head = CosineClassifier(features.shape[2], n_way, scale).to(features.device)
        head.weight.data.copy_(w)
        out.append(head.eval())
    return out
