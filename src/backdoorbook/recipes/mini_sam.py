"""Foundation pre-training of the miniature SAM on prompted CamVid masks; resumable.

    python -m backdoorbook.recipes.mini_sam [--threads 2]

No Segment Anything weights are mirrored, so the BadSAM chapter needs a "foundation" model
of its own. This command trains every part of ``build_sam("mini")`` (128 px inputs) the way SAM
is trained (Kirillov et al., ICCV 2023, arXiv:2304.02643), much reduced: each example is one
connected region of one class of a CamVid label map, prompted by its bounding box (even steps)
or by one click inside it (odd steps); the target is that region's mask, the loss BCE + soft
IoU (:func:`backdoorbook.models.sam.mask_loss`). CamVid road scenes are deliberately *not*
the downstream task (Weizmann horses): the chapter adapts a model that has never seen it.

Training uses CamVid's train and val splits with random horizontal flips; the held-out test
split gives the final box- and point-prompted IoU stored in the provenance record. AdamW,
linear warm-up then cosine decay, gradient clipping at 1. Every ``checkpoint_every`` steps
the state goes to ``artifacts/checkpoints/<name>.safetensors``; rerunning the command resumes.
When the last step is done, the weights are written as the artifact the BadSAM profile names.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from .. import runtime
from ..artifacts import ARTIFACTS_DIR
from ..book.profiles import ch01_badsam
from ..data import load_segmentation
from ..data.tensor_views import resize_square
from ..models.sam import SAM_CONFIGS, build_sam, mask_logits
from ..training.checkpoint import load_state, save_state
from ..training.losses import mask_loss
from ..training.optim import build_optimiser
from .common import RunContext, checkpoint_path, recipe_parser, ship, start

MIN_AREA_FRACTION = 0.005  # regions smaller than 0.5 % of the image are not used as examples


def connected_components(labels: torch.Tensor, ignore_index: int | None = 255) -> torch.Tensor:
    """4-connected regions of equal class in label maps ``[N, H, W]``.

    Returns ``[N, H, W]`` long ids, unique across the whole batch, ``0`` on ignored pixels: each
    region carries the largest flat index (+1) of its pixels. Label propagation (each pixel takes
    the largest id among same-class 4-neighbours), hooking (the pixel an id points to takes that
    maximum too) and pointer jumping, repeated until nothing changes.
    """
    if labels.ndim != 3:
        raise ValueError(f"expected label maps [N, H, W], got {tuple(labels.shape)}")
    valid = (
        labels != ignore_index
        if ignore_index is not None
        else torch.ones_like(labels, dtype=torch.bool)
    )
    ids = torch.where(valid, torch.arange(1, labels.numel() + 1).view(labels.shape), 0)
    same_down = valid[:, 1:] & valid[:, :-1] & (labels[:, 1:] == labels[:, :-1])
    same_right = valid[:, :, 1:] & valid[:, :, :-1] & (labels[:, :, 1:] == labels[:, :, :-1])
    while True:
        new = ids.clone()
        new[:, 1:] = torch.where(same_down, torch.maximum(new[:, 1:], ids[:, :-1]), new[:, 1:])
        new[:, :-1] = torch.where(same_down, torch.maximum(new[:, :-1], ids[:, 1:]), new[:, :-1])
        new[:, :, 1:] = torch.where(
            same_right, torch.maximum(new[:, :, 1:], ids[:, :, :-1]), new[:, :, 1:]
        )
        new[:, :, :-1] = torch.where(
            same_right, torch.maximum(new[:, :, :-1], ids[:, :, 1:]), new[:, :, :-1]
        )
        flat = new.flatten()
        pointer = (ids.flatten() - 1).clamp_min(0)
        flat = flat.scatter_reduce(
            0, pointer, torch.where(valid.flatten(), flat, 0), "amax"
        )  # hook: raise my root
        flat = torch.maximum(flat, flat[pointer])  # pointer jumping
        new = torch.where(valid, flat[(flat - 1).clamp_min(0)].view(labels.shape), 0)
        if torch.equal(new, ids):
            return ids
        ids = new


def region_examples(
    labels: torch.Tensor, ignore_index: int | None, min_area: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Component map ``[N, H, W]`` and the ``[K, 2]`` (image index, component id) of regions >=
    ``min_area`` pixels."""
    components = connected_components(labels, ignore_index)
    ids, counts = components.flatten().unique(return_counts=True)
    keep = (ids > 0) & (counts >= min_area)
    ids = ids[keep]
    image_of = (ids - 1) // (labels.shape[1] * labels.shape[2])
    return components, torch.stack([image_of, ids], dim=1)


def box_and_point(
    masks: torch.Tensor, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Tight boxes ``[B, 4]`` (x0, y0, x1, y1) and one random foreground click ``[B, 1, 2]`` for
    masks ``[B, H, W]``."""
    boxes, points = [], []
    for mask in masks:
        ys, xs = torch.nonzero(mask, as_tuple=True)
        if len(ys) == 0:
            raise ValueError("cannot prompt an empty mask")
        boxes.append(torch.stack([xs.min(), ys.min(), xs.max(), ys.max()]).float())
        pick = int(torch.randint(len(ys), (1,), generator=generator))
        points.append(torch.stack([xs[pick], ys[pick]]).float()[None])
    return torch.stack(boxes), torch.stack(points)


def _batch(images, components, examples, index, flip, generator):
    image_index, ids = examples[index, 0], examples[index, 1]
    x = images[image_index]
    masks = components[image_index] == ids[:, None, None]
    if flip is not None:
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
        masks = torch.where(flip[:, None, None], masks.flip(2), masks)
    boxes, points = box_and_point(masks, generator)
    return x, masks, boxes, points


@torch.no_grad()
def evaluate(
    sam, images, components, examples, batch_size: int = 64, seed: int = 0
) -> dict[str, float]:
    """Mean IoU (percent) of box-prompted and point-prompted masks over ``examples``."""
    generator = torch.Generator().manual_seed(seed)
    device = runtime.module_device(sam)
    ious = {"box": [], "point": []}
    with runtime.eval_mode(sam):
        for first in range(0, len(examples), batch_size):
            index = torch.arange(first, min(first + batch_size, len(examples)))
            x, masks, boxes, points = _batch(images, components, examples, index, None, generator)
            for kind, prompt in (("box", {"boxes": boxes}), ("point", {"points": points})):
                pred = (
                    mask_logits(sam, x.to(device), **{k: v.to(device) for k, v in prompt.items()})[
                        :, 0
                    ].cpu()
                    > 0
                )
                inter = (pred & masks).sum((1, 2)).float()
                union = (pred | masks).sum((1, 2)).float()
                ious[kind].append(inter / union)
    return {
        f"{kind}_prompt_iou": round(100 * torch.cat(v).mean().item(), 2) for kind, v in ious.items()
    }


@dataclass(frozen=True)
class Recipe:
    """The foundation pre-training's settings."""

    steps: int = 700
    batch_size: int = 16
    lr: float = 6e-4
    warmup: int = 50
    weight_decay: float = 0.05
    seed: int = 0
    checkpoint_every: int = 50
    eval_examples: int = 512
    images: int | None = None  # use only the first N images of each split (smoke tests)


def _regions(split: str, size: int, limit: int | None = None):
    arrays = load_segmentation("camvid", split)
    images, labels = resize_square(arrays.images[:limit], arrays.masks[:limit], size)
    components, examples = region_examples(
        labels, arrays.ignore_index, int(MIN_AREA_FRACTION * size * size)
    )
    return images, components, examples


def train(
    recipe: Recipe,
    name: str,
    *,
    run: RunContext,
    checkpoint: Path | None = None,
    directory: Path = ARTIFACTS_DIR,
    argv: list[str] | None = None,
) -> Path:
    """Pre-train (resuming from ``checkpoint``), measure on held-out CamVid regions, ship artifact
    ``name``."""
    config = SAM_CONFIGS["mini"]
    size = config.image_size
    train_parts = [_regions(split, size, recipe.images) for split in ("train", "val")]
    offset = len(train_parts[0][0])
    images = torch.cat([t[0] for t in train_parts])
    components = torch.cat([t[1] for t in train_parts])
    examples = torch.cat([train_parts[0][2], train_parts[1][2] + torch.tensor([offset, 0])])
    test_images, test_components, test_examples = _regions("test", size, recipe.images)
    pick = torch.randperm(len(test_examples), generator=torch.Generator().manual_seed(1))[
        : recipe.eval_examples
    ]
    test_examples = test_examples[pick]
    print(
        f"{len(images)} training images, {len(examples)} regions; "
        f"{len(test_examples)} test regions",
        flush=True,
    )

    device = run.device
    sam = build_sam(config).to(device).train()
    opt, schedule = build_optimiser(
        sam.parameters(),
        name="adamw",
        lr=recipe.lr,
        weight_decay=recipe.weight_decay,
        total_steps=recipe.steps,
        warmup_steps=recipe.warmup,
    )
    generator = torch.Generator().manual_seed(recipe.seed)
    step, elapsed = 0, 0.0
    checkpoint = checkpoint or checkpoint_path(name)
    if checkpoint.exists():
        state = load_state(checkpoint)
        sam.load_state_dict(state["model"])
        opt.load_state_dict(state["optimiser"])
        schedule.load_state_dict(state["schedule"])
        generator.set_state(state["generator"])
        step, elapsed = int(state["step"]), float(state["elapsed"])
        print(f"resumed at step {step}", flush=True)
    started = time.perf_counter() - elapsed
    losses = []
    bar = runtime.progress_bar(total=recipe.steps, initial=step, desc=name)
    while step < recipe.steps:
        sam.train()
        index = torch.randint(len(examples), (recipe.batch_size,), generator=generator)
        flip = torch.rand(recipe.batch_size, generator=generator) < 0.5
        x, masks, boxes, points = _batch(images, components, examples, index, flip, generator)
        prompt = {"boxes": boxes} if step % 2 == 0 else {"points": points}
        loss = mask_loss(
            mask_logits(sam, x.to(device), **{k: v.to(device) for k, v in prompt.items()}),
            masks.to(device),
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(sam.parameters(), 1.0)
        opt.step()
        schedule.step()
        step += 1
        losses.append(loss.item())
        bar.update()
        if step % recipe.checkpoint_every == 0 or step == recipe.steps:
            elapsed = time.perf_counter() - started
            bar.set_postfix(loss=f"{np.mean(losses):.4f}")
            losses = []
            save_state(
                checkpoint,
                {
                    "model": sam.state_dict(),
                    "optimiser": opt.state_dict(),
                    "schedule": schedule.state_dict(),
                    "generator": generator.get_state(),
                    "step": step,
                    "elapsed": elapsed,
                },
            )
    bar.close()
    metrics = evaluate(sam, test_images, test_components, test_examples)
    print(f"held-out CamVid test regions: {metrics}", flush=True)
    quality = {**metrics, "eval_regions": len(test_examples)}
    info = {
        "wall_time_s": time.perf_counter() - started,
        "quality": quality,
        "images_seen": recipe.steps * recipe.batch_size,
    }
    path = ship(
        name,
        sam.state_dict(),
        info,
        module=__name__,
        recipe=asdict(recipe),
        seed=recipe.seed,
        run=run,
        argv=argv,
        directory=directory,
        steps=step,
        sam_config=asdict(config),
        train_data="CamVid train+val regions (connected components, >= 0.5 % of image)",
        final_metrics={**quality, "eval_data": "CamVid test split, random regions, 128 px"},
    )
    checkpoint.unlink(missing_ok=True)
    return path


def main(argv: list[str] | None = None) -> Path:
    args = recipe_parser(__doc__.splitlines()[0]).parse_args(argv)
    recipe = Recipe()
    run = start(args, recipe.seed)
    return train(recipe, ch01_badsam.CI.foundation_artifact, run=run, argv=argv)


if __name__ == "__main__":
    main()
