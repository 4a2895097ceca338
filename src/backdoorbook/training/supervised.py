"""One supervised training loop for every chapter (classifiers and segmentation nets).

:func:`fit` trains on in-memory tensors: inputs ``[N, C, H, W]`` in [0, 1] and integer
targets (``[N]`` class labels or ``[N, H, W]`` label maps). Batches are drawn with a seeded
generator, so the same seed gives the same model on the same machine. The loss is
cross-entropy unless the caller passes another; an ``augment`` callable sees each batch
``(x, y)`` and returns a new pair, so spatial augmentations can move labels with pixels.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..runtime import progress_bar
from .checkpoint import load_state, save_state
from .optim import build_optimiser, epoch_batches, steps_per_epoch

Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass
class History:
    """Mean training loss, accuracy (percent; pixel accuracy for label maps) and wall seconds per
    epoch."""

    loss: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)


def random_crop_flip(padding: int = 4) -> Callable[[torch.Tensor, torch.Tensor], Batch]:
    """The standard CIFAR augmentation: reflect-pad by ``padding``, random crop, random horizontal
    flip.

    Label maps (``y`` of shape ``[N, H, W]``) are cropped and flipped with their images.
    """

    def augment(x: torch.Tensor, y: torch.Tensor) -> Batch:
        n, _, h, w = x.shape
        dense = y.ndim == 3
        flip = torch.rand(n, device=x.device) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
        if dense:
            y = torch.where(flip[:, None, None], y.flip(2), y)
        if padding == 0:
            return x, y
        padded = F.pad(x, (padding,) * 4, mode="reflect")
        ys = torch.randint(0, 2 * padding + 1, (n,)).tolist()
        xs = torch.randint(0, 2 * padding + 1, (n,)).tolist()
        x = torch.stack(
            [padded[i, :, a : a + h, b : b + w] for i, (a, b) in enumerate(zip(ys, xs))]
        )
        if dense:
            ypad = F.pad(y, (padding,) * 4, value=255)
            y = torch.stack([ypad[i, a : a + h, b : b + w] for i, (a, b) in enumerate(zip(ys, xs))])
        return x, y

    return augment


def fit(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    epochs: int,
    batch_size: int = 128,
    lr: float = 0.05,
    weight_decay: float = 5e-4,
    momentum: float = 0.9,
    optimiser: str = "sgd",
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    augment: Callable[[torch.Tensor, torch.Tensor], Batch] | None = None,
    seed: int = 0,
    warmup_steps: int = 0,
    final_lr: float = 0.0,
    schedule_every: str = "step",
    checkpoint: Path | None = None,
    progress: bool = True,
    desc: str = "train",
) -> History:
    """Train ``model`` in place on ``(inputs, targets)``; returns the per-epoch :class:`History`.

    Args:
        model: trained on its own device (inputs are moved batch by batch).
        inputs: float ``[N, C, H, W]`` in [0, 1]. targets: long ``[N]`` or ``[N, H, W]``.
        epochs, batch_size, lr, weight_decay, momentum: the usual; the learning rate follows
            a cosine decay to ``final_lr`` (default zero).
        optimiser: ``"sgd"`` (Nesterov momentum) or ``"adamw"`` (see
            :func:`.optim.build_optimiser`).
        loss_fn: ``loss_fn(logits, targets)``; default cross-entropy with ignore index 255.
        augment: ``augment(x, y) -> (x, y)`` applied to each batch.
        seed: seeds the batch order and the augmentation draws.
        warmup_steps: linear learning-rate warm-up before the cosine decay.
        final_lr: the cosine decay's end point (``eta_min``; not with a warm-up).
        schedule_every: ``"step"`` (default) steps the schedule after every optimiser step;
            ``"epoch"`` once per epoch, so the rate is constant within an epoch and the decay
            (and any warm-up) is counted in epochs.
        checkpoint: a file the full training state is written to after every epoch and resumed
            from when it exists (:func:`.checkpoint.save_state`), so a stopped run continues
            exactly.
    """
    if inputs.ndim != 4 or len(inputs) != len(targets):
        raise ValueError(
            "need inputs [N, C, H, W] and N targets, "
            f"got {tuple(inputs.shape)} and {tuple(targets.shape)}"
        )
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be >= 1, got {epochs} and {batch_size}")
    if schedule_every not in ("step", "epoch"):
        raise ValueError(f"schedule_every must be 'step' or 'epoch', got {schedule_every!r}")
    per_epoch = schedule_every == "epoch"
    device = next(model.parameters()).device
    steps = steps_per_epoch(len(inputs), batch_size)
    opt, schedule = build_optimiser(
        model.parameters(),
        name=optimiser,
        lr=lr,
        weight_decay=weight_decay,
        momentum=momentum,
        total_steps=epochs if per_epoch else epochs * steps,
        warmup_steps=warmup_steps,
        final_lr=final_lr,
    )
    loss_fn = loss_fn or (lambda logits, y: F.cross_entropy(logits, y, ignore_index=255))
    generator = torch.Generator().manual_seed(seed)
    history, first_epoch = History(), 0
    if checkpoint is not None and Path(checkpoint).exists():
        state = load_state(checkpoint)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimiser"])
        schedule.load_state_dict(state["schedule"])
        generator.set_state(state["generator"])
        history, first_epoch = History(**state["history"]), state["epoch"]
    model.train()
    bar = progress_bar(
        total=epochs * steps, initial=first_epoch * steps, desc=desc, progress=progress
    )
    for epoch in range(first_epoch, epochs):
        total_loss, correct, counted, started = 0.0, 0, 0, time.perf_counter()
        for index in epoch_batches(len(inputs), batch_size, generator):
            x, y = inputs[index], targets[index]
            if augment is not None:
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=generator)))
                    x, y = augment(x, y)
            x, y = x.to(device), y.to(device)
            logits = model(x)
            loss = loss_fn(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if not per_epoch:
                schedule.step()
            valid = y != 255
            total_loss += loss.item() * len(x)
            correct += (logits.argmax(1)[valid] == y[valid]).sum().item()
            counted += valid.sum().item()
            bar.update()
            bar.set_postfix(loss=f"{loss.item():.3f}")
        if per_epoch:
            schedule.step()
        history.loss.append(total_loss / len(inputs))
        history.accuracy.append(100.0 * correct / max(counted, 1))
        history.seconds.append(time.perf_counter() - started)
        if checkpoint is not None:
            save_state(
                checkpoint,
                {
                    "model": model.state_dict(),
                    "optimiser": opt.state_dict(),
                    "schedule": schedule.state_dict(),
                    "generator": generator.get_state(),
                    "history": asdict(history),
                    "epoch": epoch + 1,
                },
            )
    bar.close()
    model.eval()
    return history
