"""Few-shot classification: episodes, Baseline++ fine-tuning, and episode statistics.

The protocol of Chen et al., "A Closer Look at Few-shot Classification" (ICLR 2019,
arXiv:1904.04232), which FLBA (AAAI 2024, arXiv:2401.01377) attacks:

- :class:`EpisodeSampler` draws N-way K-shot episodes from the *novel* classes: N classes,
  K support and Q query images of each, disjoint, reproducible from ``(seed, episode index)``.
- :func:`finetune_cosine_classifier` trains a :class:`CosineClassifier` (Baseline++: the
  logit of class c is ``scale * cos(f(x), w_c)``) on frozen support features with Adam
  (lr 1e-2, 100 passes over the support set in batches of 4, as in the authors' code).
- :func:`mean_ci95` summarises per-episode percentages as ``mean +- 1.96 std / sqrt(n)``,
  the confidence interval every few-shot paper reports.

Images are float ``[N, 3, H, W]`` in [0, 1]; the backbone maps them to features ``[N, D]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class Episode:
    """Indices into the pool arrays and episode-local labels 0..N-1 (``classes[i]`` is pool label of class i)."""

    classes: tuple[int, ...]
    support_index: torch.Tensor  # [N * K], grouped by class
    support_labels: torch.Tensor  # [N * K]
    query_index: torch.Tensor  # [N * Q]
    query_labels: torch.Tensor  # [N * Q]


class EpisodeSampler:
    """Seeded N-way K-shot episodes over a pool of labelled images.

    Args:
        labels: pool labels ``[M]`` (any integers; e.g. miniImageNet's 20 test classes).
        n_way, k_shot, n_query: classes per episode, support and query images per class.
        seed: episode ``i`` depends only on ``(seed, i)``, so episodes can be drawn in any order.
    """

    def __init__(self, labels: torch.Tensor | np.ndarray, n_way: int = 5, k_shot: int = 1, n_query: int = 15,
                 seed: int = 0):
        labels = torch.as_tensor(labels).long()
        self.classes = sorted(set(labels.tolist()))
        if min(n_way, k_shot, n_query) < 1:
            raise ValueError(f"n_way, k_shot and n_query must be >= 1, got {n_way}, {k_shot}, {n_query}")
        if n_way > len(self.classes):
            raise ValueError(f"{n_way}-way episodes need {n_way} classes, the pool has {len(self.classes)}")
        self.members = {c: (labels == c).nonzero().flatten() for c in self.classes}
        smallest = min(len(m) for m in self.members.values())
        if k_shot + n_query > smallest:
            raise ValueError(f"{k_shot} shots + {n_query} queries exceed the {smallest} images of the smallest class")
        self.n_way, self.k_shot, self.n_query, self.seed = n_way, k_shot, n_query, seed

    def episode(self, index: int) -> Episode:
        """The ``index``-th episode (deterministic)."""
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        chosen = torch.randperm(len(self.classes), generator=generator)[:self.n_way].tolist()
        support, query = [], []
        for c in chosen:
            members = self.members[self.classes[c]]
            order = members[torch.randperm(len(members), generator=generator)]
            support.append(order[:self.k_shot])
            query.append(order[self.k_shot:self.k_shot + self.n_query])
        local = torch.arange(self.n_way)
        return Episode(classes=tuple(self.classes[c] for c in chosen), support_index=torch.cat(support),
                       support_labels=local.repeat_interleave(self.k_shot), query_index=torch.cat(query),
                       query_labels=local.repeat_interleave(self.n_query))


class CosineClassifier(nn.Module):
    """Baseline++ head: ``logits = scale * normalize(x) @ normalize(W).T``; ``x`` ``[B, D]`` -> ``[B, n_way]``.

    ``scale`` 2 is Chen et al.'s value for heads with at most 200 classes.
    """

    def __init__(self, in_features: int, n_way: int, scale: float = 2.0):
        super().__init__()
        if in_features < 1 or n_way < 1 or scale <= 0:
            raise ValueError(f"need positive in_features, n_way and scale, got {in_features}, {n_way}, {scale}")
        self.weight = nn.Parameter(torch.empty(n_way, in_features))
        nn.init.kaiming_uniform_(self.weight, a=5 ** 0.5)
        self.scale = scale

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if features.ndim != 2 or features.shape[1] != self.weight.shape[1]:
            raise ValueError(f"expected features [B, {self.weight.shape[1]}], got {tuple(features.shape)}")
        return self.scale * F.normalize(features, dim=1) @ F.normalize(self.weight, dim=1).T


@torch.no_grad()
def extract_features(backbone: nn.Module, images: torch.Tensor, batch_size: int = 128) -> torch.Tensor:
    """Frozen-backbone features ``[N, D]`` of [0, 1] images ``[N, 3, H, W]`` (eval mode, on the backbone's device)."""
    device = next(backbone.parameters()).device
    backbone.eval()
    return torch.cat([backbone(images[i:i + batch_size].to(device)) for i in range(0, len(images), batch_size)])


def finetune_cosine_classifier(features: torch.Tensor, labels: torch.Tensor, n_way: int, *, epochs: int = 100,
                               batch_size: int = 4, lr: float = 1e-2, scale: float = 2.0,
                               seed: int = 0) -> CosineClassifier:
    """Baseline++ fine-tuning on frozen support ``features`` ``[S, D]`` with labels ``[S]`` in 0..n_way-1.

    ``epochs`` passes over the support set in shuffled batches of ``batch_size`` with Adam
    (the authors' 100 x batch 4 at lr 1e-2). Returns the trained head in eval mode.
    """
    return finetune_cosine_classifiers(features[None], labels[None], n_way, epochs=epochs, batch_size=batch_size,
                                       lr=lr, scale=scale, seed=seed)[0]


def finetune_cosine_classifiers(features: torch.Tensor, labels: torch.Tensor, n_way: int, *, epochs: int = 100,
                                batch_size: int = 4, lr: float = 1e-2, scale: float = 2.0,
                                seed: int = 0) -> list[CosineClassifier]:
    """:func:`finetune_cosine_classifier` on ``C`` support sets at once: features ``[C, S, D]``, labels ``[C, S]``.

    Every head starts from the same seeded initialisation and sees the same batch order; the
    loss is a sum over heads and Adam acts elementwise, so each head is trained exactly as it
    would be alone (up to float rounding), only faster.
    """
    if features.ndim != 3 or labels.shape != features.shape[:2]:
        raise ValueError(f"need features [C, S, D] and labels [C, S], got {tuple(features.shape)} and "
                         f"{tuple(labels.shape)}")
    if int(labels.min()) < 0 or int(labels.max()) >= n_way:
        raise ValueError(f"labels must lie in 0..{n_way - 1}")
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be >= 1, got {epochs} and {batch_size}")
    heads, support = features.shape[0], features.shape[1]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        init = CosineClassifier(features.shape[2], n_way, scale).weight.detach()
    weight = nn.Parameter(init.to(features.device).repeat(heads, 1, 1))  # [C, n_way, D]
    optimizer = torch.optim.Adam([weight], lr=lr)
    generator = torch.Generator().manual_seed(seed)
    features, labels = F.normalize(features.detach(), dim=2), labels.to(features.device)
    for _ in range(epochs):
        order = torch.randperm(support, generator=generator).to(features.device)
        for start in range(0, support, batch_size):
            index = order[start:start + batch_size]
            logits = scale * torch.einsum("cbd,ckd->cbk", features[:, index], F.normalize(weight, dim=2))
            loss = F.cross_entropy(logits.flatten(0, 1), labels[:, index].flatten(), reduction="sum") / len(index)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    out = []
    for w in weight.detach():
        head = CosineClassifier(features.shape[2], n_way, scale).to(features.device)
        head.weight.data.copy_(w)
        out.append(head.eval())
    return out


@torch.no_grad()
def episode_rates(head: CosineClassifier, query_features: torch.Tensor, query_labels: torch.Tensor,
                  triggered_features: torch.Tensor, target: int) -> tuple[float, float]:
    """``(clean accuracy %, ASR %)`` of one episode: ASR over triggered queries whose label is not ``target``."""
    labels = query_labels.to(query_features.device)
    accuracy = 100.0 * (head(query_features).argmax(1) == labels).float().mean().item()
    keep = labels != target
    if not keep.any():
        raise ValueError(f"every query is of the target class {target}: ASR has an empty denominator")
    asr = 100.0 * (head(triggered_features[keep]).argmax(1) == target).float().mean().item()
    return accuracy, asr


def mean_ci95(values) -> tuple[float, float]:
    """``(mean, half-width)`` of the 95 % interval ``1.96 * std / sqrt(n)``.

    ``std`` is the population standard deviation, as in Chen et al.'s code.
    """
    values = np.asarray(values, dtype=float)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"need a non-empty 1-D sequence, got shape {values.shape}")
    return float(values.mean()), float(1.96 * values.std() / np.sqrt(values.size))
