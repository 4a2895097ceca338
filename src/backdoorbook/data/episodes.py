"""Seeded N-way K-shot episodes for few-shot classification.

The protocol of Chen et al., "A Closer Look at Few-shot Classification" (ICLR 2019,
arXiv:1904.04232), which FLBA (AAAI 2024, arXiv:2401.01377) attacks: :class:`EpisodeSampler`
draws N-way K-shot episodes from the *novel* classes: N classes, K support and Q query images
of each, disjoint, reproducible from ``(seed, episode index)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Episode:
    """Indices into the pool arrays and episode-local labels 0..N-1 (``classes[i]`` is pool label of
    class i)."""

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

    def __init__(
        self,
        labels: torch.Tensor | np.ndarray,
        n_way: int = 5,
        k_shot: int = 1,
        n_query: int = 15,
        seed: int = 0,
    ):
        labels = torch.as_tensor(labels).long()
        self.classes = sorted(set(labels.tolist()))
        if min(n_way, k_shot, n_query) < 1:
            raise ValueError(
                f"n_way, k_shot and n_query must be >= 1, got {n_way}, {k_shot}, {n_query}"
            )
        if n_way > len(self.classes):
            raise ValueError(
                f"{n_way}-way episodes need {n_way} classes, the pool has {len(self.classes)}"
            )
        self.members = {c: (labels == c).nonzero().flatten() for c in self.classes}
        smallest = min(len(m) for m in self.members.values())
        if k_shot + n_query > smallest:
            raise ValueError(
                f"{k_shot} shots + {n_query} queries exceed the "
                f"{smallest} images of the smallest class"
            )
        self.n_way, self.k_shot, self.n_query, self.seed = n_way, k_shot, n_query, seed

    def episode(self, index: int) -> Episode:
        """The ``index``-th episode (deterministic)."""
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        chosen = torch.randperm(len(self.classes), generator=generator)[: self.n_way].tolist()
        support, query = [], []
        for c in chosen:
            members = self.members[self.classes[c]]
            order = members[torch.randperm(len(members), generator=generator)]
            support.append(order[: self.k_shot])
            query.append(order[self.k_shot : self.k_shot + self.n_query])
        local = torch.arange(self.n_way)
        return Episode(
            classes=tuple(self.classes[c] for c in chosen),
            support_index=torch.cat(support),
            support_labels=local.repeat_interleave(self.k_shot),
            query_index=torch.cat(query),
            query_labels=local.repeat_interleave(self.n_query),
        )
