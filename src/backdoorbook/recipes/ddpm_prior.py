"""Train the ZIP chapter's 32×32 DDPM prior on the clean CIFAR-10 training split; resumable.

Usage (the command that produced ``artifacts/ddpm_cifar10``; see its provenance record)::

    python -m backdoorbook.models.train_ddpm --workdir /tmp/ddpm --until 07:20 --threads 1
    python -m backdoorbook.models.train_ddpm --workdir /tmp/ddpm --export ddpm_cifar10

Training minimises DDPM's simple loss ``||eps - eps_theta(sqrt(ab_t) x0 + sqrt(1 - ab_t) eps, t)||²``
(Ho et al., NeurIPS 2020, arXiv 2006.11239) with AdamW, linear warm-up, random horizontal
flips, and an exponential moving average (EMA) of the weights, which is what gets exported.
Every ``--checkpoint-every`` seconds the model, EMA, optimiser, data-order generator, step and
accumulated wall time go to ``<workdir>/checkpoint.pt``; rerunning the same command resumes.
``--export NAME`` writes the EMA weights as ``artifacts/NAME.safetensors`` with provenance.

Why CIFAR-10 only: ZIP is zero-shot — its prior is never trained on the dataset it defends —
so one prior trained on CIFAR-10 serves both CIFAR-10 and GTSRB, and on GTSRB it plays the
role of the paper's out-of-domain ImageNet prior. Training on one set also gives the small
CPU budget to a single distribution.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import sys
import time
from pathlib import Path

import torch

from .. import runtime
from ..artifacts import save_artifact
from ..data import load_classification, used_checksums
from ..tensors import to_image_tensor
from .ddpm import DDPMConfig, ddpm_scheduler, ddpm_unet


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", type=Path, required=True, help="checkpoint folder (outside the repository)")
    parser.add_argument("--steps", type=int, default=1_000_000, help="stop after this many optimiser steps")
    parser.add_argument("--until", default=None, help="stop at this UTC wall-clock time, HH:MM")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--warmup", type=int, default=200, help="linear learning-rate warm-up steps")
    parser.add_argument("--ema-decay", type=float, default=0.998)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint-every", type=float, default=240.0, help="seconds between checkpoints")
    parser.add_argument("--log-every", type=int, default=50)
    parser.add_argument("--export", default=None, metavar="NAME", help="export the EMA weights as an artifact and exit")
    parser.add_argument("--fp16", action="store_true", help="store exported weights as float16")
    parser.add_argument("--note", default=None, help="a remark stored in the exported provenance")
    return parser.parse_args(argv)


def _deadline(until: str | None) -> float:
    if until is None:
        return math.inf
    hours, minutes = (int(part) for part in until.split(":"))
    now = dt.datetime.now(dt.timezone.utc)
    target = now.replace(hour=hours, minute=minutes, second=0, microsecond=0)
    if target <= now:
        target += dt.timedelta(days=1)
    return time.time() + (target - now).total_seconds()


def _export(args: argparse.Namespace) -> Path:
    state = torch.load(args.workdir / "checkpoint.pt", map_location="cpu", weights_only=True)
    meta = state["meta"]
    dtype = torch.float16 if args.fp16 else torch.float32
    weights = {k: v.to(dtype) for k, v in state["ema"].items()}
    recent = meta["losses"][-200:]
    provenance = {
        "command": " ; ".join(meta["commands"]) + " ; " + " ".join(["python -m backdoorbook.models.train_ddpm",
                                                                   *sys.argv[1:]]),
        "data_checksums": meta["data_checksums"], "training_data": "cifar10 train split (50,000 images), clean",
        "wall_time_s": round(meta["wall_time_s"], 1), "device": meta["device"], "steps": state["step"],
        "images_seen": state["step"] * meta["hparams"]["batch_size"], "hparams": meta["hparams"],
        "final_loss": round(sum(recent) / len(recent), 5), "final_loss_window": len(recent),
        "loss_curve": meta["loss_curve"], "unet_config": meta["unet_config"], "scheduler": "DDPM linear betas 1e-4..0.02, T=1000",
        "storage_dtype": str(dtype).removeprefix("torch."), "weights": "EMA of the training weights",
        "parameters": sum(v.numel() for v in weights.values()),
    }
    if args.note:
        provenance["note"] = args.note
    path = save_artifact(args.export, weights, provenance)
    print(f"exported {path} ({path.stat().st_size / 1e6:.1f} MB), step {state['step']}, loss {provenance['final_loss']}")
    return path


def train(args: argparse.Namespace) -> None:
    runtime.set_threads(args.threads)
    runtime.seed_everything(args.seed)
    args.workdir.mkdir(parents=True, exist_ok=True)
    checkpoint = args.workdir / "checkpoint.pt"
    config = DDPMConfig()
    unet = ddpm_unet(config)
    ema = ddpm_unet(config).requires_grad_(False)
    ema.load_state_dict(unet.state_dict())
    optimiser = torch.optim.AdamW(unet.parameters(), lr=args.lr, weight_decay=0.0)
    generator = torch.Generator().manual_seed(args.seed)
    images = to_image_tensor(load_classification("cifar10", "train").images).mul_(2).sub_(1)
    hparams = {k: v for k, v in vars(args).items() if k in ("batch_size", "lr", "warmup", "ema_decay", "seed")}
    step, meta = 0, {"commands": [], "wall_time_s": 0.0, "losses": [], "loss_curve": [], "hparams": hparams,
                     "data_checksums": used_checksums(), "unet_config": config.to_dict(),
                     "device": runtime.describe_device(torch.device("cpu"))}
    if checkpoint.exists():
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        unet.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        optimiser.load_state_dict(state["optimiser"])
        generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        step, meta = state["step"], state["meta"]
        print(f"resumed from {checkpoint} at step {step}", flush=True)
    meta["commands"].append(" ".join(["python -m backdoorbook.models.train_ddpm", *sys.argv[1:]]))
    scheduler = ddpm_scheduler()
    alphas_cumprod = scheduler.alphas_cumprod
    deadline = _deadline(args.until)

    def save() -> None:
        torch.save({"model": unet.state_dict(), "ema": ema.state_dict(), "optimiser": optimiser.state_dict(),
                    "generator": generator.get_state(), "torch_rng": torch.get_rng_state(), "step": step,
                    "meta": meta}, args.workdir / "checkpoint.tmp")
        (args.workdir / "checkpoint.tmp").replace(checkpoint)

    unet.train()
    last_save = last_tick = last_log = time.time()
    while step < args.steps and time.time() < deadline:
        index = torch.randint(0, len(images), (args.batch_size,), generator=generator)
        x0 = images[index]
        flip = torch.rand(args.batch_size, generator=generator) < 0.5
        x0 = torch.where(flip[:, None, None, None], x0.flip(3), x0)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (args.batch_size,), generator=generator)
        noise = torch.randn(x0.shape, generator=generator)
        ab = alphas_cumprod[t].view(-1, 1, 1, 1)
        xt = ab.sqrt() * x0 + (1 - ab).sqrt() * noise
        loss = torch.nn.functional.mse_loss(unet(xt, t).sample, noise)
        for group in optimiser.param_groups:
            group["lr"] = args.lr * min(1.0, (step + 1) / args.warmup)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        optimiser.step()
        decay = min(args.ema_decay, (1 + step) / (10 + step))
        with torch.no_grad():
            for e, p in zip(ema.parameters(), unet.parameters()):
                e.lerp_(p, 1 - decay)
        step += 1
        meta["losses"] = (meta["losses"] + [loss.item()])[-1000:]
        now = time.time()
        meta["wall_time_s"] += now - last_tick
        last_tick = now
        if step % args.log_every == 0:
            recent = meta["losses"][-args.log_every:]
            mean = sum(recent) / len(recent)
            meta["loss_curve"].append([step, round(mean, 5)])
            print(f"{dt.datetime.now(dt.timezone.utc):%H:%M:%S} step {step} loss {mean:.4f} "
                  f"{(now - last_log) / args.log_every:.2f}s/step "
                  f"total {meta['wall_time_s'] / 60:.1f} min", flush=True)
            last_log = now
        if now - last_save > args.checkpoint_every:
            save()
            last_save = now
    save()
    print(f"stopped at step {step}; checkpoint {checkpoint}", flush=True)


def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    if args.export:
        _export(args)
    else:
        train(args)


if __name__ == "__main__":
    main()
