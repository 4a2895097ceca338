"""Train the clean CamVid segmentation model that the IBA chapter starts from, and ship it.

Every model the chapter (notebooks/03_iba.md) compares, a clean control and the backdoored
ones, is trained from these clean weights (by ``tools/train_iba_models.py`` for the ``ci``
profile, inside the chapter for ``paper``); pre-training them once saves seven trainings. Writes ``artifacts/<profile.clean_artifact>`` with
its provenance (command, data checksums, epochs, wall time, device, test mIoU).

    BACKDOORBOOK_DATA=../shared/data .venv/bin/python tools/train_iba_clean.py --profile ci
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from backdoorbook import runtime
from backdoorbook.artifacts import save_artifact
from backdoorbook.data import used_checksums
from backdoorbook.models.segmentation import small_deeplab
from backdoorbook.profiles import get_profile
from backdoorbook.segmentation import load_segmentation_tensors, mean_iou, predict_maps
from backdoorbook.train import fit, random_crop_flip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="ci")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    cfg = get_profile("03_iba", args.profile)
    if cfg.clean_artifact is None:
        raise SystemExit(f"profile {args.profile!r} trains its clean model inside the chapter; nothing to ship")
    runtime.seed_everything(args.seed)
    threads = runtime.set_threads()
    device = runtime.choose_device("auto")
    train = load_segmentation_tensors("camvid", "train", cfg.downsample)
    test = load_segmentation_tensors("camvid", "test", cfg.downsample)
    model = small_deeplab(len(train.classes), cfg.width).to(device)
    start = time.perf_counter()
    history = fit(model, train.images, train.labels, epochs=cfg.clean_epochs, batch_size=cfg.batch_size,
                  lr=cfg.clean_lr, optimizer="adamw", augment=random_crop_flip(4), seed=args.seed, desc="clean")
    wall = time.perf_counter() - start
    miou = mean_iou(predict_maps(model, test.images), test.labels, len(test.classes), test.ignore_index)
    print(f"clean model: test mIoU {miou} after {cfg.clean_epochs} epochs in {wall:.0f} s")
    save_artifact(cfg.clean_artifact, model.state_dict(), provenance={
        "command": "BACKDOORBOOK_DATA=../shared/data .venv/bin/python tools/train_iba_clean.py "
                   + " ".join(sys.argv[1:] if argv is None else argv),
        "data_checksums": used_checksums(), "wall_time_s": round(wall, 1),
        "device": runtime.describe_device(device), "threads": threads, "seed": args.seed,
        "profile": args.profile, "epochs": cfg.clean_epochs, "resolution": list(train.images.shape[2:]),
        "width": cfg.width, "final_train_loss": history.loss[-1], "final_train_pixel_accuracy": history.accuracy[-1],
        "test_miou": miou.value, "test_pixels": miou.n})


if __name__ == "__main__":
    main()
