"""Segment Anything, miniature and real, built from Meta's ``segment_anything`` modules.

Segment Anything (SAM) — Kirillov et al., "Segment Anything", ICCV 2023, arXiv:2304.02643 — is
an image encoder (a ViT), a prompt encoder (points, boxes, masks) and a light two-way
transformer mask decoder. This module builds the model from the official classes
(:class:`ImageEncoderViT`, :class:`PromptEncoder`, :class:`MaskDecoder`,
:class:`TwoWayTransformer`, wrapped in :class:`Sam`) for any :class:`SamConfig`:

- :data:`SAM_CONFIGS` ``"vit_b"``, ``"vit_l"``, ``"vit_h"``: the released configurations
  (1024 px inputs); :func:`load_sam_checkpoint` loads a released checkpoint
  (``weights_only=True``) into them. Nothing here downloads weights.
- ``"mini"``: a miniature SAM for 128 px inputs that this project pre-trains itself on CPU
  (:mod:`backdoorbook.recipes.mini_sam`), because no SAM weights are mirrored.

Parameter-efficient adaptation in the style of SAM-Adapter (Chen et al., "SAM Fails to
Segment Anything? — SAM-Adapter", arXiv:2304.09148), the set-up BadSAM attacks
(Guan et al., arXiv:2305.03289): :func:`add_adapters` inserts a small bottleneck MLP before
each image-encoder block, freezes the rest of the encoder and leaves the adapters, the mask
decoder and the learned dense "no mask" embedding trainable.

Conventions: images are float ``[B, 3, S, S]`` in [0, 1] with ``S = config.image_size``
(SAM's pixel normalisation happens inside :func:`mask_logits`); prompts are in pixel
coordinates of that ``S x S`` input; masks come back as logits ``[B, 1, S, S]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from segment_anything.modeling import (
    ImageEncoderViT,
    MaskDecoder,
    PromptEncoder,
    Sam,
    TwoWayTransformer,
)
from torch import nn

from ..tensors import check_images


@dataclass(frozen=True)
class SamConfig:
    """Sizes of a SAM model (defaults: the released ViT-B).

    Attributes:
        image_size: side of the square input (pixels). patch_size: ViT patch side.
        encoder_dim, encoder_depth, encoder_heads: the ViT's width, blocks and heads.
        window_size: windowed attention side in tokens (0: every block global).
        global_attn_indexes: blocks with global attention when windows are used.
        prompt_dim: width of prompt and image embeddings (the decoder's width).
        decoder_depth, decoder_heads, decoder_mlp_dim: the two-way transformer's sizes.
        mask_in_chans: hidden channels of the mask-prompt downscaler.
        iou_head_hidden_dim: hidden width of the mask-quality head.
    """

    image_size: int = 1024
    patch_size: int = 16
    encoder_dim: int = 768
    encoder_depth: int = 12
    encoder_heads: int = 12
    window_size: int = 14
    global_attn_indexes: tuple[int, ...] = (2, 5, 8, 11)
    prompt_dim: int = 256
    decoder_depth: int = 2
    decoder_heads: int = 8
    decoder_mlp_dim: int = 2048
    mask_in_chans: int = 16
    iou_head_hidden_dim: int = 256

    @property
    def embedding_size(self) -> int:
        """Side of the image embedding grid (tokens)."""
        return self.image_size // self.patch_size


SAM_CONFIGS: dict[str, SamConfig] = {
    "vit_b": SamConfig(),
    "vit_l": SamConfig(
        encoder_dim=1024, encoder_depth=24, encoder_heads=16, global_attn_indexes=(5, 11, 17, 23)
    ),
    "vit_h": SamConfig(
        encoder_dim=1280, encoder_depth=32, encoder_heads=16, global_attn_indexes=(7, 15, 23, 31)
    ),
    "mini": SamConfig(
        image_size=128,
        patch_size=8,
        encoder_dim=128,
        encoder_depth=4,
        encoder_heads=4,
        window_size=0,
        global_attn_indexes=(),
        prompt_dim=64,
        decoder_depth=2,
        decoder_heads=4,
        decoder_mlp_dim=256,
        mask_in_chans=8,
        iou_head_hidden_dim=64,
    ),
}


def _config(config: SamConfig | str) -> SamConfig:
    if isinstance(config, SamConfig):
        return config
    if config not in SAM_CONFIGS:
        raise ValueError(
            f"unknown SAM configuration {config!r}; choose one of {', '.join(SAM_CONFIGS)}"
        )
    return SAM_CONFIGS[config]


def build_sam(config: SamConfig | str = "mini") -> Sam:
    """A randomly initialised SAM (eval mode) with the sizes of ``config`` (a :class:`SamConfig` or
    a name).

    For ``"vit_b"``, ``"vit_l"``, ``"vit_h"`` the module tree and parameter shapes equal those of
    ``segment_anything.sam_model_registry``, so the released checkpoints load into it.
    """
    cfg = _config(config)
    if cfg.image_size % cfg.patch_size:
        raise ValueError(
            f"image_size {cfg.image_size} is not a multiple of patch_size {cfg.patch_size}"
        )
    grid = cfg.embedding_size
    sam = Sam(
        image_encoder=ImageEncoderViT(
            depth=cfg.encoder_depth,
            embed_dim=cfg.encoder_dim,
            img_size=cfg.image_size,
            mlp_ratio=4,
            norm_layer=partial(nn.LayerNorm, eps=1e-6),
            num_heads=cfg.encoder_heads,
            patch_size=cfg.patch_size,
            qkv_bias=True,
            use_rel_pos=True,
            global_attn_indexes=cfg.global_attn_indexes,
            window_size=cfg.window_size,
            out_chans=cfg.prompt_dim,
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=cfg.prompt_dim,
            image_embedding_size=(grid, grid),
            input_image_size=(cfg.image_size, cfg.image_size),
            mask_in_chans=cfg.mask_in_chans,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(
                depth=cfg.decoder_depth,
                embedding_dim=cfg.prompt_dim,
                mlp_dim=cfg.decoder_mlp_dim,
                num_heads=cfg.decoder_heads,
            ),
            transformer_dim=cfg.prompt_dim,
            iou_head_depth=3,
            iou_head_hidden_dim=cfg.iou_head_hidden_dim,
        ),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    )
    return sam.eval()


def load_sam_checkpoint(path: str | Path, config: SamConfig | str = "vit_b") -> Sam:
    """Build a SAM of ``config`` and load a checkpoint saved with ``torch.save(state_dict)``.

    Loads with ``weights_only=True`` (no arbitrary unpickling) and a strict key match; a
    mismatch raises ``ValueError`` naming the missing and unexpected keys, which usually means
    the wrong configuration (e.g. a ViT-L file loaded as ``"vit_b"``).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"no SAM checkpoint at {path}; SAM weights are never downloaded by this project"
        )
    state = torch.load(path, map_location="cpu", weights_only=True)
    sam = build_sam(config)
    expected = sam.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ValueError(
            f"checkpoint {path} does not fit SAM config {config!r}: "
            f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}"
        )
    wrong = [k for k in expected if expected[k].shape != state[k].shape]
    if wrong:
        raise ValueError(f"checkpoint {path}: shapes differ from config {config!r} for {wrong[:5]}")
    sam.load_state_dict(state)
    return sam


def mask_logits(
    sam: Sam,
    images: torch.Tensor,
    points: torch.Tensor | None = None,
    boxes: torch.Tensor | None = None,
) -> torch.Tensor:
    """SAM's single-mask output for a batch of images, one prompt set per image.

    Args:
        sam: a model from :func:`build_sam` (with or without adapters).
        images: float ``[B, 3, S, S]`` in [0, 1].
        points: optional ``[B, P, 2]`` (x, y) foreground clicks in pixels of the input.
        boxes: optional ``[B, 4]`` (x0, y0, x1, y1) in pixels.
        With neither, the prediction is prompt-free as in SAM-Adapter and BadSAM: an empty
        sparse prompt and the learned dense "no mask" embedding.

    Returns:
        mask logits ``[B, 1, S, S]`` (the decoder's first mask token, bilinearly upsampled).

    The decoder runs batched over images (``MaskDecoder.forward`` repeats every image for
    every prompt instead), reusing the decoder's own modules in the order of
    ``MaskDecoder.predict_masks``.
    """
    size = sam.image_encoder.img_size
    check_images(images, channels=3, size=(size, size))
    b = images.shape[0]
    x = (images * 255.0 - sam.pixel_mean) / sam.pixel_std
    embeddings = sam.image_encoder(x)
    point_prompt = None
    if points is not None:
        if points.shape[0] != b or points.ndim != 3 or points.shape[2] != 2:
            raise ValueError(f"points must be [B={b}, P, 2], got {tuple(points.shape)}")
        point_prompt = (points, torch.ones(points.shape[:2], device=points.device))
    if boxes is not None and boxes.shape != (b, 4):
        raise ValueError(f"boxes must be [B={b}, 4], got {tuple(boxes.shape)}")
    sparse, dense = sam.prompt_encoder(points=point_prompt, boxes=boxes, masks=None)
    if sparse.shape[0] != b:  # no prompt: the encoder returns one empty prompt set
        sparse = sparse.expand(b, -1, -1)
        dense = dense.expand(b, -1, -1, -1)
    decoder = sam.mask_decoder
    tokens = torch.cat([decoder.iou_token.weight, decoder.mask_tokens.weight], dim=0)
    tokens = torch.cat([tokens.unsqueeze(0).expand(b, -1, -1), sparse], dim=1)
    src = embeddings + dense
    pos = sam.prompt_encoder.get_dense_pe().expand(b, -1, -1, -1)
    hs, src = decoder.transformer(src, pos, tokens)
    _, c, h, w = embeddings.shape
    upscaled = decoder.output_upscaling(src.transpose(1, 2).reshape(b, c, h, w))
    hyper = decoder.output_hypernetworks_mlps[0](
        hs[:, 1, :]
    )  # mask token 0: the single-mask output
    low_res = torch.einsum("bc,bchw->bhw", hyper, upscaled).unsqueeze(1)
    return F.interpolate(low_res, size=images.shape[-2:], mode="bilinear", align_corners=False)


class Adapter(nn.Module):
    """Bottleneck MLP ``x + up(GELU(down(x)))`` on ``[B, H, W, dim]`` tokens; ``up`` starts at zero
    (identity)."""

    def __init__(self, dim: int, bottleneck: int):
        super().__init__()
        self.down = nn.Linear(dim, bottleneck)
        self.up = nn.Linear(bottleneck, dim)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.up(F.gelu(self.down(x)))


def _run_adapter(block: nn.Module, args: tuple) -> tuple:
    return (block.adapter(args[0]),)


def add_adapters(sam: Sam, bottleneck: int = 16) -> int:
    """Insert an :class:`Adapter` before every image-encoder block and set what trains; returns
    #trainable parameters.

    The adapter sits at ``image_encoder.blocks[i].adapter`` (so released checkpoint keys stay
    valid) and runs on the block's input through a forward pre-hook. Afterwards only the
    adapters, the mask decoder and ``prompt_encoder.no_mask_embed`` (the learned dense prompt of
    the prompt-free set-up) have ``requires_grad``; everything else is frozen.
    """
    if any(hasattr(block, "adapter") for block in sam.image_encoder.blocks):
        raise ValueError("this model already has adapters")
    if bottleneck < 1:
        raise ValueError(f"bottleneck must be >= 1, got {bottleneck}")
    dim = sam.image_encoder.patch_embed.proj.out_channels
    device = sam.pixel_mean.device
    for block in sam.image_encoder.blocks:
        block.adapter = Adapter(dim, bottleneck).to(device)
        block.register_forward_pre_hook(_run_adapter)
    for name, param in sam.named_parameters():
        param.requires_grad = (
            ".adapter." in name
            or name.startswith("mask_decoder.")
            or name.startswith("prompt_encoder.no_mask_embed.")
        )
    return trainable_parameters(sam)


def trainable_parameters(model: nn.Module) -> int:
    """Number of parameters with ``requires_grad``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
