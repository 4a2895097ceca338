"""Train the ZIP chapter's 32×32 DDPM prior on the clean CIFAR-10 training split; resumable.

    python -m backdoorbook.recipes.ddpm_prior [--until HH:MM] [--max-steps N] [--threads 2]
    # ship the weights reached so far, below the bar, and keep the checkpoint to go on from
    python -m backdoorbook.recipes.ddpm_prior --export-interim
    # the quality of a shipped prior
    python -m backdoorbook.recipes.ddpm_prior --measure ddpm_cifar10

Training minimises DDPM's simple loss
``||eps - eps_theta(sqrt(ab_t) x0 + sqrt(1 - ab_t) eps, t)||²`` (Ho et al., NeurIPS 2020,
arXiv 2006.11239) with AdamW, a linear warm-up, random horizontal
flips, gradient clipping and an exponential moving average (EMA) of the weights, which is
what gets exported. The state (model, EMA, optimiser, generator, step, loss curve, wall time)
is written to ``artifacts/checkpoints/<name>.safetensors`` every ``checkpoint_every_s``
seconds; rerunning the command resumes from it. When ``recipe.steps`` are done the quality is
measured (:func:`measure_quality`), the EMA weights are exported as the artifact the ZIP
profile names, and the checkpoint is removed. A run longer than the sittings it gets can ship
an interim prior (``--export-interim``): the same measures, a record whose
``training_status`` says how many of the recipe's steps are done, and the checkpoint kept.

Why CIFAR-10 only: ZIP is zero-shot — its prior is never trained on the dataset it defends —
so one prior trained on CIFAR-10 serves both CIFAR-10 and GTSRB, and on GTSRB it plays the
role of the paper's out-of-domain ImageNet prior.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from .. import artifacts, runtime
from ..book.profiles import ch02_zip
from ..data import load_classification
from ..defenses.zip import zip_operators, zip_purify
from ..evaluation.purification import psnr
from ..models.ddpm import DDPMConfig, ddpm_scheduler, ddpm_unet, load_ddpm_artifact
from ..tensors import to_image_tensor
from ..training.checkpoint import load_state, save_state
from ..training.optim import build_optimiser
from .common import RunContext, checkpoint_path, recipe_parser, ship, start

#: The testbed bar: images seen in training (about 20,000 steps at batch 64).
IMAGES_SEEN_BAR = 1_300_000


@dataclass(frozen=True)
class Recipe:
    """The prior's training settings."""

    steps: int = 20_313  # ceil(1.3 M / 64): the images-seen bar at batch 64
    batch_size: int = 64
    lr: float = 3e-4
    warmup_steps: int = 500
    ema_decay: float = 0.999  # an averaging window of about 1,000 steps, short against the run
    grad_clip: float = 1.0
    seed: int = 0
    checkpoint_every_s: float = 300.0


def _deadline(until: str | None) -> float:
    if until is None:
        return math.inf
    hours, minutes = (int(part) for part in until.split(":"))
    now = dt.datetime.now(dt.UTC)
    target = now.replace(hour=hours, minute=minutes, second=0, microsecond=0)
    if target <= now:
        target += dt.timedelta(days=1)
    return time.time() + (target - now).total_seconds()


@torch.no_grad()
def measure_quality(
    unet,
    alphas_cumprod: torch.Tensor,
    test_images: torch.Tensor,
    *,
    seed: int = 0,
    mse_images: int = 1000,
    purify_images: int = 256,
) -> dict:
    """The prior's held-out quality on CIFAR-10 test images in [0, 1].

    ``denoise_mse_t100``: mean ε-MSE of the prediction at t = 100 on ``mse_images`` images;
    ``purify_psnr_clean``: mean PSNR (dB) of ZIP-purified clean images (s = 2, λ = 10, 20 steps)
    to the originals, on ``purify_images`` images. Both draw their noise from ``seed``.
    """
    generator = torch.Generator().manual_seed(seed)
    x0 = test_images[:mse_images] * 2 - 1
    noise = torch.randn(x0.shape, generator=generator)
    ab = float(alphas_cumprod[100])
    xt = math.sqrt(ab) * x0 + math.sqrt(1 - ab) * noise
    with runtime.eval_mode(unet):
        predicted = torch.cat(
            [
                unet(xt[i : i + 250], torch.full((len(xt[i : i + 250]),), 100)).sample
                for i in range(0, len(xt), 250)
            ]
        )
    clean = test_images[:purify_images]
    purified = zip_purify(
        clean,
        unet,
        alphas_cumprod,
        zip_operators(2),
        steps=20,
        lam=10.0,
        seed=seed,
        batch_size=128,
        progress=False,
    )
    return {
        "denoise_mse_t100": round(F.mse_loss(predicted, noise).item(), 5),
        "denoise_images": len(x0),
        "purify_psnr_clean": round(psnr(purified, clean).mean().item(), 3),
        "purify_images": len(clean),
    }


def denoising_step(unet, optimiser, x0, t, noise, abar, grad_clip: float) -> torch.Tensor:
    """One optimiser step of the DDPM noise-prediction loss (Ho et al., 2020): noise ``x0`` to
    timesteps ``t`` with ``noise``, regress the noise (MSE), clip the gradient norm to
    ``grad_clip`` and step; returns the loss."""
    ab = abar[t].view(-1, 1, 1, 1)
    loss = F.mse_loss(unet(ab.sqrt() * x0 + (1 - ab).sqrt() * noise, t).sample, noise)
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(unet.parameters(), grad_clip)
    optimiser.step()
    return loss


def train(
    recipe: Recipe,
    name: str,
    *,
    until: str | None = None,
    max_steps: int | None = None,
    progress: bool = True,
) -> bool:
    """Train (resuming from the checkpoint) until ``recipe.steps``, the UTC time ``until`` or
    ``max_steps`` more steps, whichever comes first; True when all of the recipe's steps are
    done."""
    config = DDPMConfig()
    torch.manual_seed(recipe.seed)  # the initial weights (a resumed run loads its own)
    unet, ema = ddpm_unet(config), ddpm_unet(config).requires_grad_(False)
    ema.load_state_dict(unet.state_dict())
    optimiser, schedule = build_optimiser(
        unet.parameters(),
        name="adamw",
        lr=recipe.lr,
        schedule="constant",
        warmup_steps=recipe.warmup_steps,
    )
    generator = torch.Generator().manual_seed(recipe.seed)
    images = to_image_tensor(load_classification("cifar10", "train").images).mul_(2).sub_(1)
    abar = ddpm_scheduler().alphas_cumprod
    path = checkpoint_path(name)
    meta = {
        "step": 0,
        "wall_time_s": 0.0,
        "loss_curve": [],
        "commits": [],
        "recipe": asdict(recipe),
    }
    if path.exists():
        state = load_state(path)
        if state["meta"]["recipe"] != asdict(recipe):
            raise RuntimeError(
                f"checkpoint {path} was written by another recipe {state['meta']['recipe']}"
            )
        unet.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        optimiser.load_state_dict(state["optimiser"])
        schedule.load_state_dict(state["schedule"])
        generator.set_state(state["generator"])
        meta = state["meta"]
    meta["commits"].append(runtime.git_commit())
    deadline, last_save, recent = _deadline(until), time.time(), []
    stop_at = recipe.steps if max_steps is None else min(recipe.steps, meta["step"] + max_steps)

    def save() -> None:
        save_state(
            path,
            {
                "model": unet.state_dict(),
                "ema": ema.state_dict(),
                "optimiser": optimiser.state_dict(),
                "schedule": schedule.state_dict(),
                "generator": generator.get_state(),
                "meta": meta,
            },
        )

    unet.train()
    bar = runtime.progress_bar(
        total=recipe.steps, initial=meta["step"], desc=name, progress=progress
    )
    tick = time.perf_counter()
    while meta["step"] < stop_at and time.time() < deadline:
        x0 = images[torch.randint(0, len(images), (recipe.batch_size,), generator=generator)]
        flip = torch.rand(recipe.batch_size, generator=generator) < 0.5
        x0 = torch.where(flip[:, None, None, None], x0.flip(3), x0)
        t = torch.randint(0, len(abar), (recipe.batch_size,), generator=generator)
        noise = torch.randn(x0.shape, generator=generator)
        loss = denoising_step(unet, optimiser, x0, t, noise, abar, recipe.grad_clip)
        schedule.step()
        decay = min(recipe.ema_decay, (1 + meta["step"]) / (10 + meta["step"]))
        with torch.no_grad():
            for e, p in zip(ema.parameters(), unet.parameters()):
                e.lerp_(p, 1 - decay)
        meta["step"] += 1
        recent.append(loss.item())
        now = time.perf_counter()
        meta["wall_time_s"] += now - tick
        tick = now
        bar.update()
        if meta["step"] % 100 == 0:
            meta["loss_curve"].append([meta["step"], round(sum(recent) / len(recent), 5)])
            bar.set_postfix(loss=f"{meta['loss_curve'][-1][1]:.4f}")
            recent = []
        if time.time() - last_save > recipe.checkpoint_every_s:
            save()
            last_save = time.time()
    bar.close()
    save()
    return meta["step"] >= recipe.steps


def export(
    recipe: Recipe,
    name: str,
    run: RunContext,
    *,
    interim: bool = False,
    directory: Path = artifacts.ARTIFACTS_DIR,
) -> None:
    """Measure the run's EMA weights and ship them as artifact ``name``; remove the checkpoint,
    unless the export is ``interim`` (training not finished, the checkpoint kept to go on)."""
    path = checkpoint_path(name)
    if not path.exists():
        raise FileNotFoundError(f"no training state at {path}: train first")
    state = load_state(path)
    meta, config = state["meta"], DDPMConfig()
    done = meta["step"] >= recipe.steps
    if done == interim:
        raise ValueError(
            f"{name}: {meta['step']} of {recipe.steps} steps done; "
            + ("the run is finished, export it in full" if done else "only an interim export")
        )
    ema = ddpm_unet(config)
    ema.load_state_dict(state["ema"])
    test = to_image_tensor(load_classification("cifar10", "test").images)
    quality = {
        "training_images_seen": meta["step"] * recipe.batch_size,
        **measure_quality(ema.eval(), ddpm_scheduler().alphas_cumprod, test, seed=recipe.seed),
    }
    # the prior this run replaces, measured the same way
    previous = (
        load_ddpm_artifact(name, directory) if artifacts.is_shipped(name, directory) else None
    )
    curve = meta["loss_curve"]
    info = {
        "wall_time_s": meta["wall_time_s"],
        "images_seen": meta["step"] * recipe.batch_size,
        "quality": quality,
        "quality_bar": {"training_images_seen": IMAGES_SEEN_BAR},
        "replaced_prior_quality": None
        if previous is None
        else measure_quality(
            previous[0].eval(), previous[1].alphas_cumprod, test, seed=recipe.seed
        ),
    }
    ship(
        name,
        state["ema"],
        info,
        module=__name__,
        recipe=asdict(recipe),
        seed=recipe.seed,
        run=run,
        argv=None,
        directory=directory,
        keep_checkpoint=interim,
        training_status=(
            f"interim: {meta['step']:,} of {recipe.steps:,} steps; training goes on from its "
            "checkpoint"
            if interim
            else "finished"
        ),
        steps=meta["step"],
        training_commits=meta["commits"],
        loss_curve=curve,
        final_loss=curve[-1][1] if curve else None,
        unet_config=config.to_dict(),
        scheduler="DDPM linear betas 1e-4..0.02, T=1000",
        training_data="cifar10 train split (50,000 images), clean",
        weights="EMA of the training weights",
        storage_dtype="float32",
        parameters=sum(v.numel() for v in state["ema"].values()),
    )


def main(argv: list[str] | None = None) -> None:
    parser = recipe_parser(__doc__.splitlines()[0])
    parser.add_argument(
        "--until", default=None, help="stop at this UTC wall-clock time, HH:MM (resume later)"
    )
    parser.add_argument(
        "--measure",
        metavar="ARTIFACT",
        default=None,
        help="only print the quality measures of a shipped prior (e.g. the old one)",
    )
    parser.add_argument(
        "--max-steps", type=int, default=None, help="train at most this many steps in this sitting"
    )
    parser.add_argument(
        "--export-interim",
        action="store_true",
        help="ship the checkpoint's weights now, below the bar, and keep the checkpoint",
    )
    args = parser.parse_args(argv)
    recipe, name = Recipe(), ch02_zip.CI.prior_artifact
    run = start(args, recipe.seed)
    if args.measure:
        unet, scheduler = load_ddpm_artifact(args.measure)
        test = to_image_tensor(load_classification("cifar10", "test").images)
        print(
            args.measure,
            measure_quality(unet, scheduler.alphas_cumprod, test, seed=recipe.seed),
            flush=True,
        )
    elif args.export_interim:
        export(recipe, name, run, interim=True)
    elif train(recipe, name, until=args.until, max_steps=args.max_steps):
        export(recipe, name, run)


if __name__ == "__main__":
    main()
