"""Train the models the IBA chapter compares (clean control, baseline / NNI / PRL per rate) and ship them.

Each starts from the profile's clean artifact (``tools/train_iba_clean.py``) and is trained by
``backdoorbook.attacks.iba_training.train_from_clean``, the same code the ``paper`` profile runs
inside the chapter. Writes ``artifacts/iba_camvid_<model>_w<width>_ds<downsample>`` with its
provenance (command, data checksums, recipe, seed, wall time, device, final loss).

    BACKDOORBOOK_DATA=../shared/data .venv/bin/python tools/train_iba_models.py --profile ci
"""

from __future__ import annotations

import argparse
import sys
import time

from backdoorbook import runtime
from backdoorbook.artifacts import load_artifact, save_artifact, used_artifacts
from backdoorbook.attacks.iba import make_trigger
from backdoorbook.attacks.iba_training import artifact_name, compared_keys, recipe, train_from_clean, training_sets
from backdoorbook.data import used_checksums
from backdoorbook.profiles import get_profile
from backdoorbook.segmentation import load_segmentation_tensors


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="ci")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: every core)")
    parser.add_argument("--only", nargs="+", default=None, metavar="NAME",
                        help="train only these artifact names (default: every compared model)")
    args = parser.parse_args(argv)
    cfg = get_profile("03_iba", args.profile)
    if not cfg.ship_compared_models or cfg.clean_artifact is None:
        raise SystemExit(f"profile {args.profile!r} trains its compared models inside the chapter; nothing to ship")
    threads = runtime.set_threads(args.threads)
    device = runtime.choose_device("auto")
    train = load_segmentation_tensors("camvid", "train", cfg.downsample)
    victim, target = train.classes.index("car"), train.classes.index("road")
    clean_state = load_artifact(cfg.clean_artifact)
    sets = training_sets(train.images, train.labels, make_trigger(cfg.trigger_size, seed=args.seed), cfg,
                         victim=victim, target=target, seed=args.seed)
    command = ("BACKDOORBOOK_DATA=../shared/data .venv/bin/python tools/train_iba_models.py "
               + " ".join(sys.argv[1:] if argv is None else argv))
    for key in compared_keys(cfg.poison_rates):
        name = artifact_name(cfg, key)
        if args.only is not None and name not in args.only:
            continue
        runtime.seed_everything(args.seed)
        start = time.perf_counter()
        model, loss = train_from_clean(clean_state, sets[key], cfg, len(train.classes), device=device, seed=args.seed,
                                       desc=name)
        wall = time.perf_counter() - start
        print(f"{name}: final training loss {loss:.3f} after {cfg.poison_epochs} epochs in {wall:.0f} s", flush=True)
        save_artifact(name, model.state_dict(), provenance={
            "command": command, "data_checksums": used_checksums(), "artifacts_used": used_artifacts(),
            "wall_time_s": round(wall, 1), "device": runtime.describe_device(device), "threads": threads,
            "seed": args.seed, "profile": args.profile, "method": key[0], "poison_rate": key[1],
            "poisoned_images": sets[key].poisoned, "recipe": recipe(cfg), "final_train_loss": loss})


if __name__ == "__main__":
    main()
