"""Foundation pre-training of the miniature SAM on prompted CamVid masks; resumable.

Usage (the command that produced ``artifacts/mini_sam_camvid``; see its provenance record)::

    python -m backdoorbook.models.pretrain_sam --workdir /tmp/sam --steps 700 --lr 6e-4 --warmup 50 \
        --checkpoint-every 50 --threads 1

No Segment Anything weights are mirrored, so the BadSAM chapter needs a "foundation" model
of its own. This command trains every part of ``build_sam("mini")`` (128 px inputs) the way SAM
is trained (Kirillov et al., ICCV 2023, arXiv:2304.02643), much reduced: each example is one
connected region of one class of a CamVid label map, prompted by its bounding box (even steps)
or by one click inside it (odd steps); the target is that region's mask, the loss BCE + soft
IoU (:func:`backdoorbook.models.sam.mask_loss`). CamVid road scenes are deliberately *not*
the downstream task (Weizmann horses): the chapter adapts a model that has never seen it.

Training uses CamVid's train and val splits with random horizontal flips; the held-out test
split gives the final box- and point-prompted IoU stored in the provenance record. AdamW,
linear warm-up then cosine decay, gradient clipping at 1. Every ``--checkpoint-every`` steps
the state goes to ``<workdir>/checkpoint.pt``; rerunning the command resumes. When the last
step is done, the weights are written as ``artifacts/<--name>.safetensors`` with provenance.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from .. import runtime
from ..artifacts import ARTIFACTS_DIR, save_artifact
from ..data import load_segmentation, used_checksums
from .sam import SAM_CONFIGS, build_sam, mask_logits, mask_loss, resize_square

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
    valid = labels != ignore_index if ignore_index is not None else torch.ones_like(labels, dtype=torch.bool)
    ids = torch.where(valid, torch.arange(1, labels.numel() + 1).view(labels.shape), 0)
    same_down = valid[:, 1:] & valid[:, :-1] & (labels[:, 1:] == labels[:, :-1])
    same_right = valid[:, :, 1:] & valid[:, :, :-1] & (labels[:, :, 1:] == labels[:, :, :-1])
    while True:
        new = ids.clone()
        new[:, 1:] = torch.where(same_down, torch.maximum(new[:, 1:], ids[:, :-1]), new[:, 1:])
        new[:, :-1] = torch.where(same_down, torch.maximum(new[:, :-1], ids[:, 1:]), new[:, :-1])
        new[:, :, 1:] = torch.where(same_right, torch.maximum(new[:, :, 1:], ids[:, :, :-1]), new[:, :, 1:])
        new[:, :, :-1] = torch.where(same_right, torch.maximum(new[:, :, :-1], ids[:, :, 1:]), new[:, :, :-1])
        flat = new.flatten()
        pointer = (ids.flatten() - 1).clamp_min(0)
        flat = flat.scatter_reduce(0, pointer, torch.where(valid.flatten(), flat, 0), "amax")  # hook: raise my root
        flat = torch.maximum(flat, flat[pointer])  # pointer jumping
        new = torch.where(valid, flat[(flat - 1).clamp_min(0)].view(labels.shape), 0)
        if torch.equal(new, ids):
            return ids
        ids = new


def region_examples(labels: torch.Tensor, ignore_index: int | None, min_area: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Component map ``[N, H, W]`` and the ``[K, 2]`` (image index, component id) of regions >= ``min_area`` pixels."""
    components = connected_components(labels, ignore_index)
    ids, counts = components.flatten().unique(return_counts=True)
    keep = (ids > 0) & (counts >= min_area)
    ids = ids[keep]
    image_of = (ids - 1) // (labels.shape[1] * labels.shape[2])
    return components, torch.stack([image_of, ids], dim=1)


def box_and_point(masks: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Tight boxes ``[B, 4]`` (x0, y0, x1, y1) and one random foreground click ``[B, 1, 2]`` for masks ``[B, H, W]``."""
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
def evaluate(sam, images, components, examples, batch_size: int = 64, seed: int = 0) -> dict[str, float]:
    """Mean IoU (percent) of box-prompted and point-prompted masks over ``examples``."""
    generator = torch.Generator().manual_seed(seed)
    sam.eval()
    ious = {"box": [], "point": []}
    for start in range(0, len(examples), batch_size):
        index = torch.arange(start, min(start + batch_size, len(examples)))
        x, masks, boxes, points = _batch(images, components, examples, index, None, generator)
        for kind, prompt in (("box", {"boxes": boxes}), ("point", {"points": points})):
            pred = mask_logits(sam, x, **prompt)[:, 0] > 0
            inter = (pred & masks).sum((1, 2)).float()
            union = (pred | masks).sum((1, 2)).float()
            ious[kind].append(inter / union)
    return {f"{kind}_prompt_iou": round(100 * torch.cat(v).mean().item(), 2) for kind, v in ious.items()}


def _parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/sam"))
    parser.add_argument("--steps", type=int, default=700)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=6e-4)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--weight-decay", type=float, default=0.05)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint-every", type=int, default=50)
    parser.add_argument("--eval-examples", type=int, default=512)
    parser.add_argument("--images", type=int, default=None,
                        help="use only the first N images of each split (smoke tests)")
    parser.add_argument("--name", default="mini_sam_camvid", help="artifact name written at the end")
    parser.add_argument("--artifact-dir", type=Path, default=ARTIFACTS_DIR)
    return parser.parse_args(argv)


def _regions(split: str, size: int, limit: int | None = None):
    arrays = load_segmentation("camvid", split)
    images, labels = resize_square(arrays.images[:limit], arrays.masks[:limit], size)
    components, examples = region_examples(labels, arrays.ignore_index, int(MIN_AREA_FRACTION * size * size))
    return images, components, examples


def main(argv: list[str] | None = None) -> Path | None:
    args = _parse(argv)
    runtime.seed_everything(args.seed)
    torch.set_num_threads(args.threads)
    config = SAM_CONFIGS["mini"]
    size = config.image_size
    train = [_regions(split, size, args.images) for split in ("train", "val")]
    offset = len(train[0][0])
    images = torch.cat([t[0] for t in train])
    components = torch.cat([t[1] for t in train])
    examples = torch.cat([train[0][2], train[1][2] + torch.tensor([offset, 0])])
    test_images, test_components, test_examples = _regions("test", size, args.images)
    pick = torch.randperm(len(test_examples), generator=torch.Generator().manual_seed(1))[:args.eval_examples]
    test_examples = test_examples[pick]
    print(f"{len(images)} training images, {len(examples)} regions; {len(test_examples)} test regions", flush=True)

    sam = build_sam(config).train()
    opt = torch.optim.AdamW(sam.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / args.warmup) * 0.5 * (
        1 + math.cos(math.pi * min(s, args.steps) / args.steps)))
    generator = torch.Generator().manual_seed(args.seed)
    step, elapsed = 0, 0.0
    args.workdir.mkdir(parents=True, exist_ok=True)
    checkpoint = args.workdir / "checkpoint.pt"
    if checkpoint.exists():
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        sam.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        generator.set_state(state["generator"])
        step, elapsed = int(state["step"]), float(state["elapsed"])
        print(f"resumed at step {step}", flush=True)
    started = time.perf_counter() - elapsed
    losses = []
    while step < args.steps:
        sam.train()
        index = torch.randint(len(examples), (args.batch_size,), generator=generator)
        flip = torch.rand(args.batch_size, generator=generator) < 0.5
        x, masks, boxes, points = _batch(images, components, examples, index, flip, generator)
        prompt = {"boxes": boxes} if step % 2 == 0 else {"points": points}
        loss = mask_loss(mask_logits(sam, x, **prompt), masks)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(sam.parameters(), 1.0)
        opt.step()
        schedule.step()
        step += 1
        losses.append(loss.item())
        if step % args.checkpoint_every == 0 or step == args.steps:
            elapsed = time.perf_counter() - started
            print(f"step {step}/{args.steps} loss {np.mean(losses):.4f} lr {schedule.get_last_lr()[0]:.2e} "
                  f"{elapsed:.0f} s", flush=True)
            losses = []
            torch.save({"model": sam.state_dict(), "optimizer": opt.state_dict(), "schedule": schedule.state_dict(),
                        "generator": generator.get_state(), "step": step, "elapsed": elapsed}, checkpoint)
    metrics = evaluate(sam, test_images, test_components, test_examples)
    print(f"held-out CamVid test regions: {metrics}", flush=True)
    command = "python -m backdoorbook.models.pretrain_sam " + " ".join(argv if argv is not None else sys.argv[1:])
    return save_artifact(args.name, sam.state_dict(), directory=args.artifact_dir, provenance={
        "command": command, "data_checksums": used_checksums(), "wall_time_s": round(time.perf_counter() - started, 1),
        "device": runtime.describe_device(torch.device("cpu")), "steps": step, "batch_size": args.batch_size,
        "lr": args.lr, "warmup": args.warmup, "weight_decay": args.weight_decay, "seed": args.seed,
        "sam_config": asdict(config),
        "train_data": "CamVid train+val regions (connected components, >= 0.5 % of image)",
        "final_metrics": {**metrics, "eval_regions": len(test_examples),
                          "eval_data": "CamVid test split, random regions, 128 px"}})


if __name__ == "__main__":
    main()
