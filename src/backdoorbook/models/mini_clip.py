"""A miniature CLIP built with ``open_clip``, its tokenizer, and a loader for real open_clip
checkpoints.

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

The clean pre-training of the shipped miniature is :mod:`backdoorbook.recipes.mini_clip`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import open_clip
import torch
import torch.nn.functional as F
from open_clip.tokenizer import SimpleTokenizer
from torch import nn

#: open_clip model configuration of the miniature (the format of open_clip's
#: ``model_configs/*.json``).
MINI_CLIP_CONFIG = {
    "embed_dim": 64,
    "vision_cfg": {
        "image_size": 32,
        "patch_size": 8,
        "width": 64,
        "layers": 2,
        "head_width": 32,
        "mlp_ratio": 2.0,
    },
    "text_cfg": {
        "context_length": 16,
        "vocab_size": 49408,
        "width": 32,
        "heads": 2,
        "layers": 2,
        "mlp_ratio": 2.0,
    },
}
#: CLIP's image normalisation (open_clip's OPENAI_DATASET_MEAN / STD).
CLIP_MEAN = open_clip.OPENAI_DATASET_MEAN
CLIP_STD = open_clip.OPENAI_DATASET_STD


class ClipModel(nn.Module):
    """An open_clip ``CLIP`` with [0, 1] image inputs and a bound tokenizer.

    Args:
        clip: an ``open_clip.CLIP`` (or ``CustomTextCLIP``) instance.
        context_length: tokens per caption (the text tower's context length).
        mean, std: per-channel image normalisation applied inside :meth:`encode_image`.
    """

    def __init__(
        self,
        clip: nn.Module,
        context_length: int,
        mean: Sequence[float] = CLIP_MEAN,
        std: Sequence[float] = CLIP_STD,
    ):
        super().__init__()
        self.clip = clip
        self.context_length = context_length
        self.tokenizer = SimpleTokenizer(context_length=context_length)
        self.register_buffer(
            "mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False
        )
        self.register_buffer(
            "std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False
        )

    @property
    def image_size(self) -> int:
        size = self.clip.visual.image_size
        return size[0] if isinstance(size, (tuple, list)) else int(size)

    def tokenize(self, captions: Sequence[str]) -> torch.Tensor:
        """Token ids ``[N, context_length]`` (open_clip's BPE; long captions are truncated), on the
        model's device."""
        return self.tokenizer(list(captions)).to(self.mean.device)

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """L2-normalised embeddings ``[N, D]`` of images ``[N, 3, S, S]`` in [0, 1]."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images [N, 3, H, W] in [0, 1], got {tuple(images.shape)}")
        return F.normalize(
            self.clip.encode_image((images.to(self.mean) - self.mean) / self.std), dim=-1
        )

    def encode_text(self, text: Sequence[str] | torch.Tensor) -> torch.Tensor:
        """L2-normalised embeddings ``[N, D]`` of captions (strings or token ids ``[N, L]``)."""
        tokens = text if isinstance(text, torch.Tensor) else self.tokenize(text)
        return F.normalize(self.clip.encode_text(tokens.to(self.mean.device)), dim=-1)

    def special_token_ids(self) -> set[int]:
        """Ids that carry no caption content: padding (0), start and end of text."""
        return {0, self.tokenizer.sot_token_id, self.tokenizer.eot_token_id}

    def decode(self, tokens: torch.Tensor) -> str:
        """The caption text of one row of token ids ``[L]``, special tokens left out."""
        special = self.special_token_ids()
        return self.tokenizer.decode([t for t in tokens.tolist() if t not in special]).strip()

    def parameters_outside_token_table(self) -> int:
        """Parameters of the model other than the text tower's token-embedding table."""
        table = self.clip.token_embedding.weight.numel()
        return sum(p.numel() for p in self.parameters()) - table

    def logit_scale(self) -> torch.Tensor:
        """CLIP's learned inverse temperature ``exp(t)``, capped at 100 as in CLIP."""
        return self.clip.logit_scale.exp().clamp(max=100)

    def forward(self, images: torch.Tensor, text: Sequence[str] | torch.Tensor) -> torch.Tensor:
        """Image-to-text logits ``[N_images, N_texts]`` (scaled cosine similarities)."""
        return self.logit_scale() * self.encode_image(images) @ self.encode_text(text).T


def mini_clip(config: dict = MINI_CLIP_CONFIG, seed: int | None = None) -> ClipModel:
    """A randomly initialised miniature CLIP (``pretrained=None``) from an open_clip model
    config."""
    if seed is not None:
        torch.manual_seed(seed)
    clip = open_clip.CLIP(
        embed_dim=config["embed_dim"],
        vision_cfg=open_clip.CLIPVisionCfg(**config["vision_cfg"]),
        text_cfg=open_clip.CLIPTextCfg(**config["text_cfg"]),
    )
    return ClipModel(clip, config["text_cfg"]["context_length"])


def mini_clip_from_state(
    state: dict[str, torch.Tensor],
    device: torch.device | str = "cpu",
    config: dict = MINI_CLIP_CONFIG,
) -> ClipModel:
    """A miniature CLIP of ``config`` holding the weights ``state`` (float32), on ``device``."""
    model = mini_clip(config).to(device)
    model.load_state_dict({k: v.float() for k, v in state.items()})
    return model


def load_open_clip_checkpoint(path: str | Path, model: str | dict = "ViT-B-32") -> ClipModel:
    """Load a real open_clip checkpoint file (e.g. OpenAI's ViT-B/32 or a LAION one) into a
    :class:`ClipModel`.

    Args:
        path: a local checkpoint file (``.pt``/``.bin`` state dict, optionally under
            ``"state_dict"`` with ``module.`` prefixes, or ``.safetensors``), read with
            ``weights_only=True``.
        model: an open_clip architecture name (e.g. ``"ViT-B-32"``, ``"RN50"``) or a config dict in
            the format of :data:`MINI_CLIP_CONFIG`. Nothing is downloaded.
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
