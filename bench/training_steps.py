"""Benchmark: the recipes' training steps, against this machine's measured matmul peak.

Usage: python bench/training_steps.py [--steps 5] [--threads 2] [--clock wall|cpu]
       [--output steps.json]

One optimiser step of each recipe's network at its recipe's batch size, on random inputs of the
right shape (the cost does not depend on the pixels): the DDPM prior's UNet
(``recipes.ddpm_prior``, noise-prediction MSE, AdamW, gradient clipping), chapter 6's CIFAR
targets and the ResNet-20 that ZIP's victims and the control fine-tune (``recipes.cifar_targets``,
cross-entropy, SGD). Prints seconds per step (median of ``--steps`` after one warm-up) and the
achieved FLOP/s as a fraction of the measured fp32 matmul peak on the same threads
(``bench/flops.py``; matmul and convolution FLOPs, forward and backward). ``--clock cpu`` times
the process's CPU time instead of the wall clock, for a machine shared with other jobs (the peak
is then measured on that clock too).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from flops import counted_flops, describe, efficiency, matmul_peak

from backdoorbook import runtime
from backdoorbook.models.ddpm import ddpm_scheduler, ddpm_unet
from backdoorbook.recipes import cifar_targets, ddpm_prior


def ddpm_step() -> Callable[[], None]:
    recipe = ddpm_prior.Recipe()
    unet = ddpm_unet().train()
    optimiser = torch.optim.AdamW(unet.parameters(), lr=recipe.lr)
    abar = ddpm_scheduler().alphas_cumprod
    x0 = torch.rand(recipe.batch_size, 3, 32, 32) * 2 - 1

    def step():
        t = torch.randint(0, len(abar), (recipe.batch_size,))
        ddpm_prior.denoising_step(
            unet, optimiser, x0, t, torch.randn_like(x0), abar, recipe.grad_clip
        )

    return step


def classifier_step(key: str) -> Callable[[], None]:
    recipe = cifar_targets.RECIPES[key]
    model = cifar_targets.build(recipe).train()
    optimiser = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=0.9)
    images = torch.rand(recipe.batch_size, 3, 32, 32)
    labels = torch.randint(0, 10, (recipe.batch_size,))

    def step():
        loss = F.cross_entropy(model(images), labels)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()

    return step


STEPS = {
    "ddpm_prior (UNet, batch 64)": ddpm_step,
    **{
        f"cifar_targets {key} (batch {cifar_targets.RECIPES[key].batch_size})": (
            lambda key=key: classifier_step(key)
        )
        for key in cifar_targets.RECIPES
    },
}


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def seconds_per_step(step: Callable[[], None], repeats: int, clock: Callable[[], float]) -> float:
    step()  # warm-up
    times = []
    for _ in range(repeats):
        start = clock()
        step()
        times.append(clock() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall")
    parser.add_argument("--output", default=None)
    args = parser.parse_args(argv)
    threads = runtime.set_threads(args.threads)
    clock = CLOCKS[args.clock]
    torch.manual_seed(0)
    peak = matmul_peak(clock)
    print(
        f"{threads} threads, {args.clock} clock; measured fp32 matmul peak "
        f"{peak / 1e9:.1f} GFLOP/s",
        flush=True,
    )
    rows = []
    for name, make in STEPS.items():
        step = make()
        flops = counted_flops(step)
        seconds = seconds_per_step(step, args.steps, clock)
        row = {"step": name, "seconds_per_step": round(seconds, 3)} | efficiency(
            flops, seconds, peak
        )
        rows.append(row)
        print(f"{name}: {seconds:.3f} s/step, {describe(row)}", flush=True)
    record = {
        "threads": threads,
        "clock": args.clock,
        "results": rows,
        "versions": runtime.package_versions(("torch",)),
    }
    if args.output:
        with open(args.output, "w") as handle:
            json.dump(record, handle, indent=2)


if __name__ == "__main__":
    main()
