"""Few-shot evaluation: frozen features, per-episode accuracy and ASR, and the 95 % interval.

- :func:`episode_rates`: one episode's clean accuracy and ASR under a fine-tuned head;
  :func:`query_accuracy` restricts the accuracy to some classes;
- :func:`prototype_rates`: the same two rates under a nearest-prototype classifier (the class
  means of the support features, by cosine similarity; Snell, Swersky and Zemel, "Prototypical
  Networks for Few-shot Learning", NeurIPS 2017, arXiv:1703.05175), a second victim;
- :func:`class_cohesion`: each support feature's cosine similarity to its class mean, the
  statistic a victim who drops outlying support images would rank by;
- :func:`mean_ci95` summarises per-episode percentages as ``mean +- 1.96 std / sqrt(n)``, the
  interval every few-shot paper reports (Chen et al., ICLR 2019, arXiv:1904.04232).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..fidelity import Deviation
from ..runtime import batched

_FLBA = "thinwayliu/FLBA-Backdoor@d57475f core/model/finetuning/baseline_plus.py"

DEVIATIONS = (
    Deviation(
        item="ASR counting",
        authors="every query is triggered and counted, the target class's included, with the "
        f"label set to the target ({_FLBA}:985-1001 for FLBA, 212-227 for BadNets)",
        ours="ASR over the triggered queries whose true class is not the target",
        why="a target-class query classified as the target is no success of the attack; "
        "counting them (a fifth of the queries in 5-way, most of them sent to the target) "
        "raises the ASR",
        claims=(
            "badnets-asr-rises-1-shot",
            "badnets-asr-rises-5-shot",
            "flba-high-asr-stealthy",
            "both-perturbations-contribute",
        ),
        where=(
            "backdoorbook.evaluation.few_shot.episode_rates",
            "backdoorbook.evaluation.few_shot.prototype_rates",
        ),
    ),
    Deviation(
        item="heads per condition",
        authors="each call of set_forward_adaptation fine-tunes a fresh, randomly initialised "
        "head in a fresh batch order, and it is called twice per episode: one head scores clean "
        f"accuracy, an independent second one the ASR ({_FLBA}:976-1001, 1176-1199)",
        ours="one head per condition scores both; every condition of an episode starts from the "
        "same seeded head and sees the same batch order",
        why="paired conditions: differences between them come from the support sets alone, and "
        "the attack's ASR is measured on the head whose accuracy is reported",
        claims=(
            "badnets-asr-rises-1-shot",
            "badnets-asr-rises-5-shot",
            "badnets-accuracy-falls-1-shot",
            "badnets-accuracy-falls-5-shot",
            "flba-high-asr-stealthy",
            "both-perturbations-contribute",
        ),
        where=(
            "backdoorbook.attacks.flba.attack_episode",
            "backdoorbook.training.cosine_head.finetune_cosine_classifiers",
        ),
    ),
)


def extract_features(
    backbone: nn.Module, images: torch.Tensor, batch_size: int = 128
) -> torch.Tensor:
    """Frozen-backbone features ``[N, D]`` (CPU) of [0, 1] images ``[N, 3, H, W]``, in eval mode,
    batched."""
    return batched(backbone, images, batch_size)


def _asr_mask(labels: torch.Tensor, target: int) -> torch.Tensor:
    keep = labels != target
    if not keep.any():
        raise ValueError(
            f"every query is of the target class {target}: ASR has an empty denominator"
        )
    return keep


@torch.no_grad()
def query_accuracy(
    head: nn.Module,
    features: torch.Tensor,
    labels: torch.Tensor,
    classes: torch.Tensor | None = None,
) -> float:
    """Accuracy (%) of ``head`` on query ``features`` ``[Q, D]`` with ``labels`` ``[Q]``; over the
    queries whose label is in ``classes`` (a 1-D tensor of class indices) when it is given."""
    labels = labels.to(features.device)
    keep = torch.ones_like(labels, dtype=torch.bool)
    if classes is not None:
        keep = torch.isin(labels, torch.as_tensor(classes, device=labels.device))
    if not keep.any():
        raise ValueError(f"no query has a label in {classes}: the accuracy is undefined")
    return 100.0 * (head(features[keep]).argmax(1) == labels[keep]).float().mean().item()


@torch.no_grad()
def episode_rates(
    head: nn.Module,
    query_features: torch.Tensor,
    query_labels: torch.Tensor,
    triggered_features: torch.Tensor,
    target: int,
) -> tuple[float, float]:
    """``(clean accuracy %, ASR %)`` of one episode: ASR over triggered queries whose label is not
    ``target``."""
    labels = query_labels.to(query_features.device)
    keep = _asr_mask(labels, target)
    accuracy = query_accuracy(head, query_features, labels)
    asr = 100.0 * (head(triggered_features[keep]).argmax(1) == target).float().mean().item()
    return accuracy, asr


class _Prototypes(nn.Module):
    """Logits ``cos(x, p_c)`` against fixed class prototypes ``p`` ``[n_way, D]``."""

    def __init__(self, prototypes: torch.Tensor):
        super().__init__()
        self.prototypes = F.normalize(prototypes, dim=1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return F.normalize(features, dim=1) @ self.prototypes.T


def class_means(features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The mean feature of each class 0..max(labels): ``[n_way, D]`` from ``[S, D]`` and ``[S]``
    (every class needs at least one support feature)."""
    if features.ndim != 2 or labels.shape != features.shape[:1]:
        raise ValueError(
            f"need features [S, D] and labels [S], got {tuple(features.shape)} and "
            f"{tuple(labels.shape)}"
        )
    labels = labels.to(features.device)
    counts = torch.bincount(labels)
    if (counts == 0).any():
        raise ValueError(f"classes {(counts == 0).nonzero().flatten().tolist()} have no support")
    sums = torch.zeros(len(counts), features.shape[1], dtype=features.dtype, device=features.device)
    return sums.index_add_(0, labels, features) / counts[:, None].to(features.dtype)


def prototype_rates(
    support_features: torch.Tensor,
    support_labels: torch.Tensor,
    query_features: torch.Tensor,
    query_labels: torch.Tensor,
    triggered_features: torch.Tensor,
    target: int,
) -> tuple[float, float]:
    """:func:`episode_rates` for a nearest-prototype victim: each query goes to the class whose
    mean support feature is closest in cosine similarity (no training)."""
    head = _Prototypes(class_means(support_features, support_labels))
    return episode_rates(head, query_features, query_labels, triggered_features, target)


def class_cohesion(features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``cos(f_i, mean of f_i's class)`` for every support feature ``[S, D]``: 1 for a class of
    one image; low values mark the outliers an outlier filter would drop."""
    means = class_means(features, labels)
    return F.cosine_similarity(features, means[labels.to(features.device)], dim=1)


def mean_ci95(values) -> tuple[float, float]:
    """``(mean, half-width)`` of the 95 % interval ``1.96 * std / sqrt(n)``.

    ``std`` is the population standard deviation, as in Chen et al.'s code.
    """
    values = np.asarray(values, dtype=float)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"need a non-empty 1-D sequence, got shape {values.shape}")
    return float(values.mean()), float(1.96 * values.std() / np.sqrt(values.size))
