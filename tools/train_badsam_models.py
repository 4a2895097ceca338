"""Adapt the foundation SAM on Weizmann Horse (clean and at each poison rate) and ship the adapted parts.

Runs ``backdoorbook.attacks.badsam_training.adapt_from_foundation``, the same code the
``paper`` profile runs inside the chapter, on the chapter's split. Writes
``artifacts/badsam_<config>_adapted_<rate>pct`` (adapters, mask decoder, dense prompt) with
provenance: command, data and foundation checksums, recipe, seed, per-epoch loss, wall time, device.

    BACKDOORBOOK_DATA=../shared/data .venv/bin/python tools/train_badsam_models.py --profile ci
"""

from __future__ import annotations

import argparse
import sys
import time

from backdoorbook import runtime
from backdoorbook.artifacts import load_artifact, save_artifact, used_artifacts
from backdoorbook.attacks.badsam_training import (adapt_from_foundation, artifact_name, horse_split, recipe,
                                                  trained_state)
from backdoorbook.data import used_checksums
from backdoorbook.models.sam import SAM_CONFIGS
from backdoorbook.profiles import get_profile


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="ci")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: every core)")
    parser.add_argument("--rates", type=float, nargs="+", default=None,
                        help="adapt only at these poison rates (default: 0 and every rate of the profile)")
    args = parser.parse_args(argv)
    cfg = get_profile("01_badsam", args.profile)
    if not cfg.ship_adapted_models or cfg.checkpoint is not None:
        raise SystemExit(f"profile {args.profile!r} adapts its models inside the chapter; nothing to ship")
    threads = runtime.set_threads(args.threads)
    device = runtime.choose_device("auto")
    foundation = load_artifact("mini_sam_camvid")
    x_train, y_train, _, _ = horse_split(SAM_CONFIGS[cfg.sam_config].image_size, cfg.test_images, args.seed)
    command = ("BACKDOORBOOK_DATA=../shared/data .venv/bin/python tools/train_badsam_models.py "
               + " ".join(sys.argv[1:] if argv is None else argv))
    for rate in args.rates if args.rates is not None else (0.0, *cfg.poison_rates):
        runtime.seed_everything(args.seed)
        start = time.perf_counter()
        sam, history, poisoned = adapt_from_foundation(foundation, cfg, x_train, y_train, rate, device=device,
                                                       seed=args.seed)
        wall = time.perf_counter() - start
        name = artifact_name(cfg, rate)
        print(f"{name}: final loss {history.loss[-1]:.3f} after {cfg.epochs} epochs in {wall:.0f} s", flush=True)
        save_artifact(name, trained_state(sam), provenance={
            "command": command, "data_checksums": used_checksums(), "artifacts_used": used_artifacts(),
            "wall_time_s": round(wall, 1), "device": runtime.describe_device(device), "threads": threads,
            "seed": args.seed, "profile": args.profile, "poison_rate": rate, "poisoned_images": len(poisoned),
            "fine_tuning_images": len(x_train), "recipe": recipe(cfg), "loss_per_epoch": history.loss})


if __name__ == "__main__":
    main()
