"""One supervised training loop for every chapter (classifiers and segmentation nets).

:func:`fit` trains on in-memory tensors: inputs ``[N, C, H, W]`` in [0, 1] and integer
targets (``[N]`` class labels or ``[N, H, W]`` label maps). Batches are drawn with a seeded
generator, so the same seed gives the same model on the same machine. The loss is
cross-entropy unless the caller passes another; an ``augment`` callable sees each batch
``(x, y)`` and returns a new pair, so spatial augmentations can move labels with pixels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from .runtime import progress_enabled

Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass
class History:
    """Mean training loss and accuracy (percent; pixel accuracy for label maps) per epoch."""

    loss: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)


def random_crop_flip(padding: int = 4) -> Callable[[torch.Tensor, torch.Tensor], Batch]:
    """The standard CIFAR augmentation: reflect-pad by ``padding``, random crop, random horizontal flip.

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
        x = torch.stack([padded[i, :, a:a + h, b:b + w] for i, (a, b) in enumerate(zip(ys, xs))])
        if dense:
            ypad = F.pad(y, (padding,) * 4, value=255)
            y = torch.stack([ypad[i, a:a + h, b:b + w] for i, (a, b) in enumerate(zip(ys, xs))])
        return x, y
    return augment


def fit(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, *, epochs: int, batch_size: int = 128,
        lr: float = 0.05, weight_decay: float = 5e-4, momentum: float = 0.9, optimizer: str = "sgd",
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        augment: Callable[[torch.Tensor, torch.Tensor], Batch] | None = None, seed: int = 0,
        progress: bool = True, desc: str = "train") -> History:
    """Train ``model`` in place on ``(inputs, targets)``; returns the per-epoch :class:`History`.

    Args:
        model: trained on its own device (inputs are moved batch by batch).
        inputs: float ``[N, C, H, W]`` in [0, 1]. targets: long ``[N]`` or ``[N, H, W]``.
        epochs, batch_size, lr, weight_decay, momentum: the usual; the learning rate follows
            a cosine decay to zero over all steps.
        optimizer: ``"sgd"`` (Nesterov momentum) or ``"adamw"``.
        loss_fn: ``loss_fn(logits, targets)``; default cross-entropy with ignore index 255.
        augment: ``augment(x, y) -> (x, y)`` applied to each batch.
        seed: seeds the batch order and the augmentation draws.
    """
    if inputs.ndim != 4 or len(inputs) != len(targets):
        raise ValueError(f"need inputs [N, C, H, W] and N targets, got {tuple(inputs.shape)} and {tuple(targets.shape)}")
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be >= 1, got {epochs} and {batch_size}")
    device = next(model.parameters()).device
    params = [p for p in model.parameters() if p.requires_grad]
    if optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=momentum > 0)
    elif optimizer == "adamw":
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    else:
        raise ValueError(f"unknown optimizer {optimizer!r}; choose 'sgd' or 'adamw'")
    steps_per_epoch = -(-len(inputs) // batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * steps_per_epoch)
    loss_fn = loss_fn or (lambda logits, y: F.cross_entropy(logits, y, ignore_index=255))
    generator = torch.Generator().manual_seed(seed)
    history = History()
    model.train()
    bar = tqdm(total=epochs * steps_per_epoch, desc=desc, disable=not progress_enabled(progress))
    for _ in range(epochs):
        order = torch.randperm(len(inputs), generator=generator)
        total_loss, correct, counted = 0.0, 0, 0
        for start in range(0, len(inputs), batch_size):
            index = order[start:start + batch_size]
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
            schedule.step()
            valid = y != 255
            total_loss += loss.item() * len(x)
            correct += (logits.argmax(1)[valid] == y[valid]).sum().item()
            counted += valid.sum().item()
            bar.update()
            bar.set_postfix(loss=f"{loss.item():.3f}")
        history.loss.append(total_loss / len(inputs))
        history.accuracy.append(100.0 * correct / max(counted, 1))
    bar.close()
    model.eval()
    return history
