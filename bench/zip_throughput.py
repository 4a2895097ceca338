"""Benchmark: ZIP purification throughput (32×32 images, 20 DDIM steps, grayscale + downsample ×2).

Usage: python bench/zip_throughput.py [--images 128] [--batch-sizes 32 128] [--threads 2]
       [--device auto] [--prior ddpm_cifar10 | --random-prior] [--output results.json]

Purifies ``--images`` random images with the shipped prior (or, with ``--random-prior``, an
untrained UNet of the same architecture: same cost, no artifact needed) and prints images per second
per batch size after one untimed warm-up batch. Each purification costs ``steps`` UNet evaluations;
on a CPU the achieved FLOP/s is reported against the measured matmul peak (``bench/flops.py``).
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from flops import counted_flops, describe, efficiency, matmul_peak

from backdoorbook import runtime
from backdoorbook.defenses.zip import zip_operators, zip_purify
from backdoorbook.models.ddpm import ddpm_scheduler, ddpm_unet, load_ddpm_artifact


def measure(unet, alphas_cumprod, images: torch.Tensor, batch_size: int, steps: int) -> float:
    """Images per second of :func:`zip_purify` on ``images`` (after one warm-up batch)."""
    ops = zip_operators(2)
    purify_one_batch(unet, alphas_cumprod, images[:batch_size], steps)
    if unet.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    zip_purify(
        images, unet, alphas_cumprod, ops, steps=steps, batch_size=batch_size, progress=False
    )
    if unet.device.type == "cuda":
        torch.cuda.synchronize()
    return len(images) / (time.perf_counter() - start)


def purify_one_batch(unet, alphas_cumprod, batch: torch.Tensor, steps: int):
    return zip_purify(
        batch,
        unet,
        alphas_cumprod,
        zip_operators(2),
        steps=steps,
        batch_size=len(batch),
        progress=False,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=128)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--prior", default="ddpm_cifar10")
    parser.add_argument("--random-prior", action="store_true")
    parser.add_argument("--output", default=None)
    args = parser.parse_args(argv)
    threads = runtime.set_threads(args.threads)
    device = runtime.choose_device(args.device)
    unet = ddpm_unet() if args.random_prior else load_ddpm_artifact(args.prior)[0]
    unet = unet.eval().to(device)
    images = torch.rand(args.images, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    abar = ddpm_scheduler().alphas_cumprod
    flops_per_image = counted_flops(lambda: purify_one_batch(unet, abar, images[:1], args.steps))
    peak = matmul_peak() if device.type == "cpu" else None
    rows = []
    for batch_size in args.batch_sizes:
        rate = measure(unet, abar, images, batch_size, args.steps)
        row = {"batch_size": batch_size, "images_per_s": round(rate, 2)}
        line = f"batch {batch_size}: {rate:.2f} images/s ({args.steps} steps, {args.images} images)"
        if peak:
            row |= efficiency(flops_per_image * args.images, args.images / rate, peak)
            line += f", {describe(row)}"
        rows.append(row)
        print(line, flush=True)
    record = {
        "device": runtime.describe_device(device),
        "threads": threads,
        "steps": args.steps,
        "images": args.images,
        "prior": "random" if args.random_prior else args.prior,
        "results": rows,
        "versions": runtime.package_versions(("torch", "diffusers")),
    }
    print(json.dumps(record))
    if args.output:
        with open(args.output, "w") as handle:
            json.dump(record, handle, indent=2)


if __name__ == "__main__":
    main()
