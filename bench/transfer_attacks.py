"""Benchmark: our MI-FGSM and DI (DIM) against torchattacks' MIFGSM and DIFGSM.

Usage: BACKDOORBOOK_DATA=../shared/data python bench/transfer_attacks.py [--images 128]
       [--repeats 5] [--threads 1]

Same surrogate (the pretrained CIFAR ResNet-20, eval mode), same batch of real CIFAR-10 test
images, same settings (ε = 8/255, 10 steps, α = ε/10, μ = 1; DI: resize rate 1.1, p = 0.5).
Runs alternate between the two libraries and each reports its median time over ``repeats``
runs after one warm-up. The time is the process's CPU time (``time.process_time``), not the wall
clock, so that other jobs on a shared machine do not enter the comparison; with ``--threads 1``
it is the time the attack computed. Prints images per CPU second, the ratio
ours / torchattacks (> 1: ours is faster) and our achieved FLOP/s against the measured matmul
peak on the same clock (``bench/flops.py``); exits 1 if ours is more than 5 % slower.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch
import torch.nn.functional as F
import torchattacks
from flops import counted_flops, describe, efficiency, matmul_peak

from backdoorbook import data
from backdoorbook.attacks.transfer import DIM, MIFGSM
from backdoorbook.models import load_cifar_resnet
from backdoorbook.tensors import to_image_tensor

EPS, STEPS = 8 / 255, 10


def timed(attack, images, labels) -> float:
    start = time.process_time()
    attack(images, labels)
    return time.process_time() - start


def attack_flops(model, images, labels) -> int:
    """FLOPs of a ``STEPS``-step attack on 32 px inputs: ``STEPS`` times one forward and one
    backward to the input. FlopCounterMode's module hooks do not support ``autograd.grad``, which
    the attacks call, so one step is counted through ``backward()`` with the weights frozen (the
    attacks compute no weight gradients either); DI's resized inputs (up to 10 % larger per side)
    make its count a lower bound."""
    x = images.clone().requires_grad_(True)
    frozen = [p for p in model.parameters() if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    try:
        step = counted_flops(lambda: F.cross_entropy(model(x), labels).backward())
    finally:
        for p in frozen:
            p.requires_grad_(True)
    return STEPS * step


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    test = data.load_classification("cifar10", "test")
    images = to_image_tensor(test.images[: args.images])
    labels = torch.as_tensor(test.labels[: args.images]).long()
    model = load_cifar_resnet(20)
    pairs = {
        "MI-FGSM": (
            MIFGSM(model, eps=EPS, steps=STEPS, decay=1.0),
            torchattacks.MIFGSM(model, eps=EPS, alpha=EPS / STEPS, steps=STEPS, decay=1.0),
        ),
        "DI-MI-FGSM": (
            DIM(model, eps=EPS, steps=STEPS, decay=1.0, resize_rate=1.1, diversity_prob=0.5),
            torchattacks.DIFGSM(
                model,
                eps=EPS,
                alpha=EPS / STEPS,
                steps=STEPS,
                decay=1.0,
                resize_rate=1.1,
                diversity_prob=0.5,
            ),
        ),
    }
    print(
        f"{args.images} CIFAR-10 images, ResNet-20 surrogate, eps 8/255, {STEPS} steps, "
        f"{torch.get_num_threads()} threads, median CPU time of {args.repeats} alternating runs"
    )
    peak = matmul_peak(time.process_time)
    ok = True
    for name, (ours, theirs) in pairs.items():
        timed(ours, images, labels), timed(theirs, images, labels)  # warm-up
        ours_s, theirs_s = [], []
        for _ in range(args.repeats):
            ours_s.append(timed(ours, images, labels))
            theirs_s.append(timed(theirs, images, labels))
        ours_ips = args.images / statistics.median(ours_s)
        theirs_ips = args.images / statistics.median(theirs_s)
        ratio = ours_ips / theirs_ips
        ok &= ratio >= 0.95
        flops = attack_flops(model, images, labels)
        print(
            f"{name:11s} ours {ours_ips:7.1f} img/CPU-s   "
            f"torchattacks {theirs_ips:7.1f} img/CPU-s   ratio {ratio:.2f}   "
            f"ours: {describe(efficiency(flops, statistics.median(ours_s), peak))}"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
