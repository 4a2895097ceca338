"""Run-time set-up shared by every layer: seeding, devices, threads, eval mode, batched inference.

One call, :func:`seed_everything`, seeds Python, NumPy and torch, so the same seed and
profile give the same results record on the same machine. Device choice never calls
``.cuda()`` behind the caller's back: it returns a :class:`torch.device` that the chapter
passes to the models it builds. :func:`eval_mode` is the one place that switches a model to
eval mode and restores its mode afterwards; :func:`batched` runs a model over a large tensor in
batches on the model's device; :func:`progress_bar` is the one progress bar, silenced by
``TQDM_DISABLE`` (which the book build sets).
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import random
import resource
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

REPO_ROOT = Path(__file__).resolve().parents[2]

#: Packages whose versions go into every results record.
TRACKED_PACKAGES = (
    "torch",
    "torchvision",
    "numpy",
    "diffusers",
    "open_clip_torch",
    "segment-anything",
    "papermill",
    "jupyter-book",
    "seaborn",
    "matplotlib",
    "pillow",
    "safetensors",
)

_DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch (CPU and CUDA)."""
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)


def choose_device(preference: str = "auto") -> torch.device:
    """Return the device to run on.

    ``"auto"`` picks CUDA when available, then Apple's MPS, else the CPU. Asking for a
    device that is not available is an error, not a silent fallback.
    """
    if preference not in _DEVICE_CHOICES:
        raise ValueError(
            f"unknown device {preference!r}; choose one of {', '.join(_DEVICE_CHOICES)}"
        )
    cuda_ok = torch.cuda.is_available()
    mps_ok = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if preference == "auto":
        return torch.device("cuda" if cuda_ok else "mps" if mps_ok else "cpu")
    if preference == "cuda" and not cuda_ok:
        raise RuntimeError("device='cuda' requested but torch.cuda.is_available() is False")
    if preference == "mps" and not mps_ok:
        raise RuntimeError("device='mps' requested but the MPS backend is not available")
    return torch.device(preference)


def set_threads(n: int | None = None) -> int:
    """Set torch's intra-op thread count (default: all cores this process may use)."""
    if n is None:
        n = (
            len(os.sched_getaffinity(0))
            if hasattr(os, "sched_getaffinity")
            else (os.cpu_count() or 1)
        )
    if n < 1:
        raise ValueError(f"thread count must be >= 1, got {n}")
    torch.set_num_threads(n)
    return n


def peak_memory_mb() -> float:
    """Peak resident memory of this process (MiB), from ``getrusage``."""
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return rss_kib / 1024.0


def peak_gpu_memory_mb() -> float | None:
    """Peak CUDA memory allocated by torch (MiB), or ``None`` without CUDA."""
    if not torch.cuda.is_available():
        return None
    return torch.cuda.max_memory_allocated() / 2**20


#: Tracked files that a run itself rewrites, which therefore do not make a tree dirty: the
#: training state a long recipe commits between sittings.
TRAINING_STATE = "artifacts/checkpoints"


def git_commit(root: Path = REPO_ROOT) -> str:
    """The checkout's commit hash, with ``-dirty`` when tracked files other than the training
    state (:data:`TRAINING_STATE`) are modified."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            [
                "git",
                "status",
                "--porcelain",
                "--untracked-files=no",
                "--",
                ".",
                f":(exclude){TRAINING_STATE}",
            ],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "")


def package_versions(names: tuple[str, ...] = TRACKED_PACKAGES) -> dict[str, str]:
    """Installed versions of ``names`` (``"not installed"`` for missing ones), plus Python's."""
    versions = {"python": sys.version.split()[0]}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def describe_device(device: torch.device) -> str:
    """A human-readable device description for reports, e.g. ``cpu (2 threads, x86_64)``."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"{device.type} ({torch.get_num_threads()} threads, {platform.machine()})"


def progress_enabled(requested: bool = True) -> bool:
    """Whether to draw a progress bar: as requested, unless ``TQDM_DISABLE`` is set (the book build
    sets it)."""
    return requested and os.environ.get("TQDM_DISABLE", "").lower() in ("", "0", "false")


def progress_bar(
    iterable=None, *, total: int | None = None, desc: str = "", progress: bool = True, **options
) -> tqdm:
    """A tqdm bar over ``iterable`` (or of ``total`` steps), drawn only if
    :func:`progress_enabled`."""
    return tqdm(iterable, total=total, desc=desc, disable=not progress_enabled(progress), **options)


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode for the block and restore its previous mode afterwards."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def module_device(model: nn.Module) -> torch.device:
    """The device of ``model``'s first parameter (or buffer); the CPU for a module without
    either."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


@torch.no_grad()
def batched(
    model: nn.Module,
    inputs: torch.Tensor,
    batch_size: int = 256,
    apply: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """``apply(model, batch)`` (default ``model(batch)``) over ``inputs`` in batches, in eval mode.

    Each batch is moved to the model's device; the outputs are concatenated on the CPU. The
    model's mode is restored afterwards.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    apply = apply or (lambda m, x: m(x))
    device = module_device(model)
    with eval_mode(model):
        out = [
            apply(model, inputs[start : start + batch_size].to(device)).cpu()
            for start in range(0, len(inputs), batch_size)
        ]
    return torch.cat(out)
