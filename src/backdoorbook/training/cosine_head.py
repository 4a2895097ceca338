"""Baseline++ fine-tuning: a cosine classifier trained on frozen support features.

The protocol of Chen et al., "A Closer Look at Few-shot Classification" (ICLR 2019,
arXiv:1904.04232), which FLBA (Liu et al., AAAI 2024, arXiv:2401.01377) attacks:
:func:`finetune_cosine_classifier` trains a fresh
:class:`~backdoorbook.models.heads.CosineClassifier` (the logit of class c is
``2 * g_c * cos(f(x), v_c)``, directions and norms both learned) on frozen support features:
100 passes over the shuffled support set in batches of 4. The optimiser here is Adam at lr 1e-2
(see :data:`DEVIATIONS`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..fidelity import Deviation
from ..models.heads import CosineClassifier, cosine_logits
from .optim import build_optimiser, epoch_batches

DEVIATIONS = (
    Deviation(
        item="fine-tuning optimiser",
        authors="the FLBA run config (results/.../config.yaml) is not committed; the repository's "
        "candidates are Adam lr 1e-2 (config/classifiers/Baseline++.yaml:4-10), Adam lr 1e-3 "
        "(config/baseline++.yaml:20-29) and SGD lr 0.01, momentum 0.9, dampening 0.9, "
        "weight decay 1e-3 (config/reproduce/Baseline++/"
        "BaselinePlus-miniImageNet--ravi-resnet12-Table2.yaml:14-23), all with 100 passes in "
        "batches of 4 (thinwayliu/FLBA-Backdoor@d57475f); Chen et al. fine-tune with that SGD "
        "(wyharveychen/CloserLookFewShot@e03aca8 methods/baselinefinetune.py:33-40)",
        ours="Adam, lr 1e-2, no weight decay, 100 passes in batches of 4",
        why="the setting actually run cannot be recovered; we take the Baseline++ classifier "
        "config of the FLBA repository",
        claims=(
            "badnets-asr-rises-1-shot",
            "badnets-asr-rises-5-shot",
            "badnets-accuracy-falls-1-shot",
            "badnets-accuracy-falls-5-shot",
            "flba-high-asr-stealthy",
            "both-perturbations-contribute",
        ),
        where=(
            "backdoorbook.training.cosine_head.finetune_cosine_classifier",
            "backdoorbook.training.cosine_head.finetune_cosine_classifiers",
        ),
    ),
)


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

    The head is ``CosineClassifier(D, n_way, scale)`` built under ``torch.manual_seed(seed)``
    (the global generator is restored afterwards). Its directions and per-class norms are trained
    with Adam at ``lr`` on the mean cross-entropy of each batch, ``epochs`` passes over the support
    set in shuffled batches of ``batch_size`` (the order from
    :func:`~backdoorbook.training.optim.epoch_batches` seeded with ``seed``). Returns the trained
    head in eval mode.
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
    loss is a sum over heads, each head's parameters receive only its own gradient and Adam acts
    elementwise, so each head is trained exactly as it would be alone (up to float rounding).
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
    heads, support, dim = features.shape
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        init = CosineClassifier(dim, n_way, scale)
    device = features.device
    weight = nn.Parameter(init.weight.detach().to(device).repeat(heads, 1, 1))  # [C, n_way, D]
    gain = nn.Parameter(init.gain.detach().to(device).repeat(heads, 1))  # [C, n_way]
    optimiser, _ = build_optimiser([weight, gain], name="adam", lr=lr, schedule="constant")
    generator = torch.Generator().manual_seed(seed)
    features, labels = features.detach(), labels.to(device)
    for _ in range(epochs):
        for index in epoch_batches(support, batch_size, generator):
            index = index.to(device)
            logits = cosine_logits(features[:, index], weight, gain, scale)  # [C, b, n_way]
            loss = F.cross_entropy(
                logits.flatten(0, 1), labels[:, index].flatten(), reduction="sum"
            ) / len(index)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
    out = []
    for w, g in zip(weight.detach(), gain.detach()):
        head = CosineClassifier(dim, n_way, scale).to(device)
        head.weight.data.copy_(w)
        head.gain.data.copy_(g)
        out.append(head.eval())
    return out
