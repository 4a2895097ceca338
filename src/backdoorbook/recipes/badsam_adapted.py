"""The adapted models the BadSAM chapter compares: clean adaptation and backdoored \
adaptation per poison rate.

    python -m backdoorbook.recipes.badsam_adapted [--profile ci] [--rates 0 0.1] [--threads 2]
    python -m backdoorbook.recipes.badsam_adapted --random-encoder [--profile ci]

Each starts from the same foundation SAM, gets the profile's adapter (SAM-Adapter's prompt
generator, :func:`backdoorbook.models.sam.add_adapters`) and is fine-tuned prompt-free on
Weizmann Horse (:func:`backdoorbook.attacks.badsam.adapt`), with a fraction of the fine-tuning
set poisoned at the images' original resolution before they are resized (Guan et al., "BadSAM",
arXiv:2305.03289). Planting the backdoor takes tens of epochs, more than four
adaptations fit into a CPU chapter's minutes, so under the ``ci`` profile this module's command runs
exactly this code beforehand and ships the trained parts (adapters, mask decoder, dense prompt; the
frozen encoder stays in the foundation artifact); :func:`adapted_model` checks each artifact's
recipe against the profile. The ``paper`` profile adapts in the chapter through the same function.
``--random-encoder`` ships the chapter's control instead: the same adaptation, at the profile's
largest poison rate, of the foundation with its image encoder re-initialised
(:func:`backdoorbook.attacks.badsam.random_encoder`), its encoder's fingerprint recorded.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from segment_anything.modeling import Sam

from .. import artifacts, runtime
from ..artifacts import ARTIFACTS_DIR, ArtifactError, load_or_train
from ..attacks.badsam import adapt, encoder_fingerprint, poison_fine_tuning_set, random_encoder
from ..book.profiles import get_profile, recipe_of
from ..data.tensor_views import horse_split
from ..models.sam import add_adapters, build_sam, load_sam_checkpoint
from .common import recipe_parser, ship, start


def foundation_state(cfg) -> tuple[dict[str, torch.Tensor], dict | None]:
    """The foundation SAM of profile ``cfg``: ``(state dict, provenance)`` of the project's
    ``foundation_artifact``, or of the released checkpoint ``cfg.checkpoint`` (provenance
    ``None``)."""
    if cfg.checkpoint is not None:
        return load_sam_checkpoint(cfg.checkpoint, cfg.sam_config).state_dict(), None
    return artifacts.load_artifact(cfg.foundation_artifact), artifacts.artifact_provenance(
        cfg.foundation_artifact
    )


def _with_adapters(foundation: dict, cfg, device) -> Sam:
    sam = build_sam(cfg.sam_config)
    sam.load_state_dict(foundation)
    add_adapters(
        sam,
        cfg.adapter,
        scale_factor=cfg.prompt_scale_factor,
        bottleneck=cfg.adapter_bottleneck,
    )
    return sam.to(device)


def trained_state(sam: Sam) -> dict[str, torch.Tensor]:
    """The tensors adaptation changes (those with ``requires_grad``), the rest being the
    foundation's."""
    return {name: p.detach() for name, p in sam.named_parameters() if p.requires_grad}


def adapt_from_foundation(
    foundation: dict,
    cfg,
    images: list[np.ndarray],
    masks: list[np.ndarray],
    rate: float,
    *,
    device: torch.device | str = "cpu",
    seed: int = 0,
    progress: bool = True,
) -> tuple[dict, dict]:
    """Poison ``rate`` of ``(images, masks)`` (uint8 images at their original sizes, {0, 1}
    masks), resize them to the model's input and adapt a fresh copy of the foundation.

    Returns the adapted tensors (:func:`trained_state`) and the training's record (the keys of
    the shipped artifacts' provenance).
    """
    sam = _with_adapters(foundation, cfg, device)
    x, y, poisoned = poison_fine_tuning_set(
        images, masks, rate, sam.image_encoder.img_size, cfg.trigger_fraction, seed=seed
    )
    started = time.perf_counter()
    history = adapt(
        sam,
        x,
        y,
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        final_lr=cfg.final_lr,
        seed=seed,
        progress=progress,
        desc=f"adapt {rate:.0%}",
    )
    return trained_state(sam), {
        "wall_time_s": time.perf_counter() - started,
        "poisoned_images": len(poisoned),
        "fine_tuning_images": len(images),
        "loss_per_epoch": history.loss,
    }


def adapted_model(
    foundation: dict,
    cfg,
    rate: float,
    images: list[np.ndarray],
    masks: list[np.ndarray],
    *,
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: bool = True,
    directory: Path = ARTIFACTS_DIR,
) -> tuple[Sam, dict]:
    """``(model in eval mode, info)`` adapted at ``rate`` on ``(images, masks)`` (as for
    :func:`adapt_from_foundation`): the shipped artifact when the profile ships its adapted
    models (refused if its recipe, seed or tensors differ), else adapted here."""
    name = cfg.adapted_artifact(rate) if cfg.ship_adapted_models else None
    trained = load_or_train(
        name,
        lambda: adapt_from_foundation(
            foundation, cfg, images, masks, rate, device=device, seed=seed, progress=progress
        ),
        recipe=recipe_of(cfg),
        remake=f"python -m {__name__}",
        device=device,
        directory=directory,
    )
    sam = _with_adapters(foundation, cfg, device)
    differing = sorted(set(trained.state) ^ set(trained_state(sam)))
    if differing:
        raise ArtifactError(
            f"artifact {name} does not hold exactly this model's adapted tensors; "
            f"{len(differing)} names differ, e.g. {differing[:3]}"
        )
    sam.load_state_dict(trained.state, strict=False)
    return sam.eval(), trained.info


def main(argv: list[str] | None = None) -> None:
    parser = recipe_parser(__doc__.splitlines()[0])
    parser.add_argument("--profile", default="ci")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--rates",
        type=float,
        nargs="+",
        default=None,
        help="adapt only at these poison rates (default: 0 and every rate of the profile)",
    )
    parser.add_argument(
        "--random-encoder",
        action="store_true",
        help="ship the random-encoder control (the largest poison rate, encoder re-initialised)",
    )
    args = parser.parse_args(argv)
    cfg = get_profile("01_badsam", args.profile)
    if not cfg.ship_adapted_models or cfg.checkpoint is not None:
        raise SystemExit(
            f"profile {args.profile!r} adapts its models inside the chapter; nothing to ship"
        )
    run = start(args, args.seed)
    start_state, _ = foundation_state(cfg)
    rates = args.rates if args.rates is not None else (0.0, *cfg.poison_rates)
    recorded = {}
    if args.random_encoder:
        start_state = random_encoder(start_state, cfg.sam_config, cfg.random_encoder_seed)
        recorded = {"encoder_sha256": encoder_fingerprint(start_state)}
        rates = (max(cfg.poison_rates),)
    names = replace(cfg, adapted_artifacts=cfg.random_encoder_artifacts) if recorded else cfg
    fine_tuning, _ = horse_split(cfg.test_images, args.seed)
    for rate in rates:
        runtime.seed_everything(args.seed)
        state, info = adapt_from_foundation(
            start_state,
            cfg,
            fine_tuning.images,
            fine_tuning.masks,
            rate,
            device=run.device,
            seed=args.seed,
        )
        ship(
            names.adapted_artifact(rate),
            state,
            {**info, **recorded},
            module=__name__,
            recipe=recipe_of(cfg),
            seed=args.seed,
            run=run,
            argv=argv,
            profile=args.profile,
            poison_rate=rate,
        )


if __name__ == "__main__":
    main()
