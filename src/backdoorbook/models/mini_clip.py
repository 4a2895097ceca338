"""A miniature CLIP built with ``open_clip``, its tokenizer, a loader for real open_clip checkpoints,
and the clean pre-training that produces the shipped ``clip_mini_clean_32px`` artifact.

CLIP (Radford et al., "Learning Transferable Visual Models From Natural Language Supervision",
ICML 2021, arXiv 2103.00020) trains an image tower and a text tower so that matching
image-caption pairs have the highest cosine similarity in a batch. The miniature uses
``open_clip.CLIP`` (Cherti et al., "Reproducible scaling laws for contrastive language-image
learning", CVPR 2023, arXiv 2212.07143) with a custom small configuration
(:data:`MINI_CLIP_CONFIG`: a 2-layer ViT on 32x32 images with 8x8 patches, a 2-layer text
transformer over open_clip's own BPE vocabulary of 49,408 tokens, 16-token context),
``pretrained=None``: no released weights are used.

:class:`ClipModel` wraps an open_clip model so that images enter as float ``[N, 3, S, S]`` in
[0, 1] (the normalisation lives inside) and captions as strings or token ids; both encoders
return L2-normalised embeddings ``[N, D]``.

Run ``python -m backdoorbook.models.mini_clip`` to re-create the artifact (about 20 min on one
CPU thread).
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import open_clip
import torch
import torch.nn.functional as F
from open_clip.tokenizer import SimpleTokenizer
from torch import nn

#: open_clip model configuration of the miniature (the format of open_clip's ``model_configs/*.json``).
MINI_CLIP_CONFIG = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": 32, "patch_size": 8, "width": 64, "layers": 2, "head_width": 32, "mlp_ratio": 2.0},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2, "mlp_ratio": 2.0},
}
#: CLIP's image normalisation (open_clip's OPENAI_DATASET_MEAN / STD).
CLIP_MEAN = open_clip.OPENAI_DATASET_MEAN
CLIP_STD = open_clip.OPENAI_DATASET_STD
ARTIFACT = "clip_mini_clean_32px"


class ClipModel(nn.Module):
    """An open_clip ``CLIP`` with [0, 1] image inputs and a bound tokenizer.

    Args:
        clip: an ``open_clip.CLIP`` (or ``CustomTextCLIP``) instance.
        context_length: tokens per caption (the text tower's context length).
        mean, std: per-channel image normalisation applied inside :meth:`encode_image`.
    """

    def __init__(self, clip: nn.Module, context_length: int, mean: Sequence[float] = CLIP_MEAN,
                 std: Sequence[float] = CLIP_STD):
        super().__init__()
        self.clip = clip
        self.context_length = context_length
        self.tokenizer = SimpleTokenizer(context_length=context_length)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    @property
    def image_size(self) -> int:
        size = self.clip.visual.image_size
        return size[0] if isinstance(size, (tuple, list)) else int(size)

    def tokenize(self, captions: Sequence[str]) -> torch.Tensor:
        """Token ids ``[N, context_length]`` (open_clip's BPE; long captions are truncated), on the model's device."""
        return self.tokenizer(list(captions)).to(self.mean.device)

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """L2-normalised embeddings ``[N, D]`` of images ``[N, 3, S, S]`` in [0, 1]."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images [N, 3, H, W] in [0, 1], got {tuple(images.shape)}")
        return F.normalize(self.clip.encode_image((images.to(self.mean) - self.mean) / self.std), dim=-1)

    def encode_text(self, text: Sequence[str] | torch.Tensor) -> torch.Tensor:
        """L2-normalised embeddings ``[N, D]`` of captions (strings or token ids ``[N, L]``)."""
        tokens = text if isinstance(text, torch.Tensor) else self.tokenize(text)
        return F.normalize(self.clip.encode_text(tokens.to(self.mean.device)), dim=-1)

    def logit_scale(self) -> torch.Tensor:
        """CLIP's learned inverse temperature ``exp(t)``, capped at 100 as in CLIP."""
        return self.clip.logit_scale.exp().clamp(max=100)

    def forward(self, images: torch.Tensor, text: Sequence[str] | torch.Tensor) -> torch.Tensor:
        """Image-to-text logits ``[N_images, N_texts]`` (scaled cosine similarities)."""
        return self.logit_scale() * self.encode_image(images) @ self.encode_text(text).T


def mini_clip(config: dict = MINI_CLIP_CONFIG, seed: int | None = None) -> ClipModel:
    """A randomly initialised miniature CLIP (``pretrained=None``) from an open_clip model config."""
    if seed is not None:
        torch.manual_seed(seed)
    clip = open_clip.CLIP(embed_dim=config["embed_dim"], vision_cfg=open_clip.CLIPVisionCfg(**config["vision_cfg"]),
                          text_cfg=open_clip.CLIPTextCfg(**config["text_cfg"]))
    return ClipModel(clip, config["text_cfg"]["context_length"])


def load_open_clip_checkpoint(path: str | Path, model: str | dict = "ViT-B-32") -> ClipModel:
    """Load a real open_clip checkpoint file (e.g. OpenAI's ViT-B/32 or a LAION one) into a :class:`ClipModel`.

    Args:
        path: a local checkpoint file (``.pt``/``.bin`` state dict, optionally under ``"state_dict"``
            with ``module.`` prefixes, or ``.safetensors``), read with ``weights_only=True``.
        model: an open_clip architecture name (e.g. ``"ViT-B-32"``, ``"RN50"``) or a config dict in the
            format of :data:`MINI_CLIP_CONFIG`. Nothing is downloaded.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    if isinstance(model, dict):
        clip = mini_clip(model).clip
        open_clip.load_checkpoint(clip, str(path), weights_only=True)
        context_length = model["text_cfg"]["context_length"]
    else:
        clip = open_clip.create_model(model, pretrained=str(path), weights_only=True)
        context_length = clip.context_length
    mean = getattr(clip.visual, "image_mean", None) or CLIP_MEAN
    std = getattr(clip.visual, "image_std", None) or CLIP_STD
    return ClipModel(clip, context_length, mean, std).eval()


def pretrain_clip(data, *, epochs: int, batch_size: int = 256, lr: float = 2e-3, seed: int = 0,
                  device: torch.device | str = "cpu", progress: bool = True) -> tuple[ClipModel, list[float]]:
    """A fresh :func:`mini_clip` trained with the CLIP loss on ``data`` (a
    :class:`~backdoorbook.data.captions.CaptionedImages`); returns the model and per-epoch losses."""
    from ..contrastive import clip_objective, train_contrastive

    model = mini_clip(seed=seed).to(device)
    losses = train_contrastive(model, len(data), clip_objective(model, data.images, data.captions), epochs=epochs,
                               batch_size=batch_size, lr=lr, seed=seed, progress=progress,
                               desc="clean CLIP pre-training")
    return model, losses


def main(argv: Sequence[str] | None = None) -> None:
    """Pre-train the clean miniature CLIP on captioned CIFAR-10 + miniImageNet and save the artifact."""
    from ..artifacts import save_artifact
    from ..contrastive import zero_shot_accuracy, zero_shot_classifier
    from ..data import used_checksums
    from ..data.captions import load_captioned
    from ..runtime import choose_device, describe_device, seed_everything, set_threads

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--cifar-per-class", type=int, default=2000)
    parser.add_argument("--mini-per-class", type=int, default=80)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--name", default=ARTIFACT)
    args = parser.parse_args(argv)
    seed_everything(args.seed)
    set_threads(args.threads)
    device = choose_device(args.device)
    started = time.perf_counter()
    train = load_captioned("train", cifar_per_class=args.cifar_per_class, mini_per_class=args.mini_per_class,
                           seed=args.seed)
    test = load_captioned("test", cifar_per_class=100, mini_per_class=20, seed=args.seed)
    model, losses = pretrain_clip(train, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                                  device=device)
    state = {k: v.detach().half() for k, v in model.state_dict().items()}  # fp16 keeps the artifact small
    model.load_state_dict({k: v.float() for k, v in state.items()})
    classifier = zero_shot_classifier(model, train.classes)
    ca = zero_shot_accuracy(model, test.images, test.labels, classifier)
    save_artifact(args.name, state, provenance={
        "command": "python -m backdoorbook.models.mini_clip " + " ".join(argv if argv is not None else sys.argv[1:]),
        "config": copy.deepcopy(MINI_CLIP_CONFIG), "data_checksums": used_checksums(),
        "wall_time_s": round(time.perf_counter() - started, 1), "device": describe_device(device),
        "threads": args.threads, "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
        "train_pairs": len(train), "cifar_per_class": args.cifar_per_class, "mini_per_class": args.mini_per_class,
        "final_loss": losses[-1], "zero_shot_top1": ca.value, "zero_shot_test_images": ca.n,
        "dtype": "float16"})
    print(f"saved {args.name}: zero-shot top-1 {ca}")


if __name__ == "__main__":
    main()
