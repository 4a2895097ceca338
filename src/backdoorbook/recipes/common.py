"""What every recipe shares: its command line, the clean-tree rule, seeds, threads, timing.

A recipe module defines a frozen ``Recipe`` dataclass (the settings that define its
artifacts), ``train(recipe, ...)`` and ``main(argv)``. :func:`recipe_parser` builds the
command line, :func:`start` enforces that an artifact is made only from a clean committed
tree (``--allow-dirty`` records a ``-dirty`` commit instead, for trials), seeds everything and
sets the threads; :func:`checkpoint_path` is where a resumable run keeps its state.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import artifacts, runtime

#: Where resumable recipes keep their training state between sittings (inside the checkout,
#: so a run too long for one session can be committed and resumed by the next).
CHECKPOINT_DIR = runtime.REPO_ROOT / "artifacts" / "checkpoints"


class DirtyTreeError(RuntimeError):
    """An artifact would be made from uncommitted source."""


@dataclass(frozen=True)
class RunContext:
    """How a recipe runs: the commit it runs at, its device and thread count."""

    commit: str
    device: torch.device
    threads: int


def recipe_parser(description: str) -> argparse.ArgumentParser:
    """A parser with the options every recipe takes (``--threads``, ``--device``,
    ``--allow-dirty``)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: every core)"
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    parser.add_argument(
        "--allow-dirty",
        action="store_true",
        help=(
            "run from a tree with uncommitted changes (the record then says -dirty); "
            "for trials only"
        ),
    )
    return parser


def start(args: argparse.Namespace, seed: int) -> RunContext:
    """Check the tree, seed everything, set threads and device; refuse a dirty tree unless
    allowed."""
    commit = runtime.git_commit()
    if commit.endswith("-dirty") and not args.allow_dirty:
        raise DirtyTreeError(
            f"the checkout at {runtime.REPO_ROOT} has uncommitted changes ({commit}); "
            "artifacts are made only from a clean committed tree (commit first, or pass "
            "--allow-dirty for a trial)"
        )
    runtime.seed_everything(seed)
    threads = runtime.set_threads(args.threads)
    return RunContext(commit, runtime.choose_device(args.device), threads)


def checkpoint_path(name: str) -> Path:
    """The resumable training state of artifact ``name``."""
    return CHECKPOINT_DIR / f"{name}.safetensors"


def ship(
    name: str,
    state: dict[str, torch.Tensor],
    info: dict,
    *,
    module: str,
    recipe: dict,
    seed: int,
    run: RunContext,
    argv: list[str] | None,
    directory: Path = artifacts.ARTIFACTS_DIR,
    keep_checkpoint: bool = False,
    **fields,
) -> Path:
    """Write artifact ``name`` with its provenance record (:func:`backdoorbook.artifacts.provenance`
    of ``info`` and ``fields``), remove its checkpoint (unless ``keep_checkpoint``: an interim
    export of a run that goes on), and say what was written."""
    record = artifacts.provenance(
        module,
        recipe=recipe,
        seed=seed,
        device=run.device,
        argv=argv,
        commit=run.commit,
        **info,
        **fields,
    )
    path = artifacts.save_artifact(name, state, record, directory)
    if not keep_checkpoint:
        checkpoint_path(name).unlink(missing_ok=True)
    print(f"{name}: {record['quality']}, {record['wall_time_s']:.0f} s -> {path}", flush=True)
    return path
