"""The one optimiser-and-schedule builder and the seeded batch order that every training loop uses.

:func:`build_optimiser` turns a few settings into a torch optimiser and a learning-rate
schedule that is stepped once per optimiser step:

- ``schedule="cosine"``: cosine decay from ``lr`` to ``final_lr`` over ``total_steps``
  (``torch.optim.lr_scheduler.CosineAnnealingLR``), after an optional linear warm-up;
- ``schedule="constant"``: ``lr`` throughout, after an optional linear warm-up.

:func:`epoch_batches` yields the index batches of one epoch in a seeded random order.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

import torch

OPTIMISERS = ("sgd", "adam", "adamw")
SCHEDULES = ("cosine", "constant")


def build_optimiser(
    params: Iterable[torch.nn.Parameter],
    *,
    name: str,
    lr: float,
    weight_decay: float = 0.0,
    momentum: float = 0.9,
    schedule: str = "cosine",
    total_steps: int | None = None,
    warmup_steps: int = 0,
    final_lr: float = 0.0,
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """``(optimiser, schedule)`` for ``params``.

    Args:
        name: ``"sgd"`` (Nesterov momentum when ``momentum > 0``), ``"adam"`` or ``"adamw"``.
        lr, weight_decay, momentum: the optimiser's settings (``momentum`` for SGD only).
        schedule: ``"cosine"`` (needs ``total_steps``) or ``"constant"``.
        warmup_steps: linear warm-up, step ``s`` at ``lr * (s + 1) / warmup_steps``.
        final_lr: the cosine schedule's end point (its ``eta_min``; without warm-up only).
    """
    params = [p for p in params if p.requires_grad]
    if not params:
        raise ValueError("no trainable parameters to optimise")
    if lr <= 0 or weight_decay < 0 or warmup_steps < 0:
        raise ValueError(
            f"need lr > 0, weight_decay >= 0, warmup_steps >= 0; got {lr}, {weight_decay}, "
            f"{warmup_steps}"
        )
    if name == "sgd":
        optimiser = torch.optim.SGD(
            params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=momentum > 0
        )
    elif name == "adam":
        optimiser = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    elif name == "adamw":
        optimiser = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    else:
        raise ValueError(f"unknown optimiser {name!r}; choose one of {', '.join(OPTIMISERS)}")
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")
    if schedule == "cosine" and (total_steps is None or total_steps < 1):
        raise ValueError(f"a cosine schedule needs total_steps >= 1, got {total_steps}")
    if schedule == "cosine" and warmup_steps == 0:
        return optimiser, torch.optim.lr_scheduler.CosineAnnealingLR(
            optimiser, T_max=total_steps, eta_min=final_lr
        )
    if final_lr:
        raise ValueError("final_lr is supported only by the cosine schedule without warm-up")

    def factor(step: int) -> float:
        warm = min(1.0, (step + 1) / warmup_steps) if warmup_steps else 1.0
        if schedule == "constant":
            return warm
        return warm * 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps))

    return optimiser, torch.optim.lr_scheduler.LambdaLR(optimiser, factor)


def epoch_batches(n: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """The index batches ``[<= batch_size]`` of one pass over ``0..n-1`` in an order drawn from
    ``generator``."""
    if n < 1 or batch_size < 1:
        raise ValueError(f"need n >= 1 and batch_size >= 1, got {n} and {batch_size}")
    order = torch.randperm(n, generator=generator)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


def steps_per_epoch(n: int, batch_size: int) -> int:
    """Optimiser steps of one pass over ``n`` samples in batches of ``batch_size`` (last batch may
    be smaller)."""
    return -(-n // batch_size)
