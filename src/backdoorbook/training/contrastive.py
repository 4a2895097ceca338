"""Contrastive image-text training for the miniature CLIP.

- :func:`clip_loss`: CLIP's symmetric InfoNCE over a batch of matching pairs (Radford et al.,
  ICML 2021, arXiv 2103.00020).
- :func:`train_contrastive`: the one contrastive training loop. It draws seeded batches of
  pair indices and minimises an *objective* ``objective(index, epoch) -> loss``; the objective
  closes over the data, so plain CLIP training, poisoned training and every defense (CleanCLIP,
  TA-Cleaner, UBT) share the loop and differ only in their objective.

Zero-shot evaluation lives in :mod:`backdoorbook.evaluation.zero_shot`. Images are float
``[N, 3, S, S]`` in [0, 1]; the model is a :class:`~backdoorbook.models.mini_clip.ClipModel`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from ..runtime import progress_bar
from .optim import build_optimiser, epoch_batches, steps_per_epoch

Objective = Callable[[torch.Tensor, int], torch.Tensor]


def clip_loss(
    image_embeddings: torch.Tensor, text_embeddings: torch.Tensor, logit_scale: torch.Tensor
) -> torch.Tensor:
    """Symmetric cross-entropy of the scaled similarity matrix ``[B, B]``; pair ``i`` matches text
    ``i``."""
    if image_embeddings.shape != text_embeddings.shape:
        raise ValueError(
            f"embeddings differ in shape: {tuple(image_embeddings.shape)} vs "
            f"{tuple(text_embeddings.shape)}"
        )
    logits = logit_scale * image_embeddings @ text_embeddings.T
    target = torch.arange(len(logits), device=logits.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def clip_objective(model, images: torch.Tensor, captions: Sequence[str]) -> Objective:
    """The plain CLIP objective on the pairs ``(images[i], captions[i])``."""
    if len(images) != len(captions):
        raise ValueError(f"{len(images)} images but {len(captions)} captions")

    def objective(index: torch.Tensor, epoch: int) -> torch.Tensor:
        return clip_loss(
            model.encode_image(images[index]),
            model.encode_text([captions[i] for i in index.tolist()]),
            model.logit_scale(),
        )

    return objective


def train_contrastive(
    model,
    n: int,
    objective: Objective,
    *,
    epochs: int,
    batch_size: int = 256,
    lr: float = 1e-3,
    weight_decay: float = 0.05,
    seed: int = 0,
    progress: bool = True,
    desc: str = "contrastive training",
) -> list[float]:
    """Minimise ``objective`` over ``epochs`` passes of seeded random batches of the indices
    ``0..n-1``.

    AdamW with a cosine decay of ``lr`` to zero over all steps (last batch of an epoch may be
    smaller). Returns the mean loss of each epoch. The model is left in eval mode.
    """
    if n < 2 or epochs < 1 or batch_size < 2:
        raise ValueError(
            f"need n >= 2, epochs >= 1 and batch_size >= 2, got {n}, {epochs}, {batch_size}"
        )
    steps = steps_per_epoch(n, batch_size)
    opt, schedule = build_optimiser(
        model.parameters(),
        name="adamw",
        lr=lr,
        weight_decay=weight_decay,
        total_steps=epochs * steps,
    )
    generator = torch.Generator().manual_seed(seed)
    losses = []
    model.train()
    bar = progress_bar(total=epochs * steps, desc=desc, progress=progress)
    for epoch in range(epochs):
        total = 0.0
        for index in epoch_batches(n, batch_size, generator):
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
