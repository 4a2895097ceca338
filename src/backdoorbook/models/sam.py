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

Parameter-efficient adaptation as in SAM-Adapter (Chen et al., "SAM Fails to Segment
Anything? — SAM-Adapter", arXiv:2304.09148), the set-up BadSAM attacks (Guan et al.,
arXiv:2305.03289): :func:`add_adapters` gives the encoder SAM-Adapter's
:class:`PromptGenerator` (one prompt per block, from the image's high-frequency component and
the patch embedding, added to the block's input), or, as an ablation, a zero-initialised
bottleneck MLP before each block (:class:`Adapter`). It freezes the rest of the encoder and
leaves the adapter, the mask decoder and the learned dense "no mask" embedding trainable.
The adapters live in new submodules, so the released checkpoint keys stay valid.

Conventions: images are float ``[B, 3, S, S]`` in [0, 1] with ``S = config.image_size``
(SAM's pixel normalisation happens inside :func:`mask_logits`); prompts are in pixel
coordinates of that ``S x S`` input; masks come back as logits ``[B, 1, S, S]``.
"""

from __future__ import annotations

import math
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

from ..fidelity import Deviation
from ..tensors import check_images

#: The claims of chapter 1 that any property of the adapted models can move.
_ADAPTED_MODEL_CLAIMS = ("clean-quality", "trigger-collapse", "adapters-suffice")

DEVIATIONS = (
    Deviation(
        item="dense prompt and positional encoding at the start of adaptation",
        authors=(
            "GuanZihan/BadSAM@0a89a64 models/sam.py:148-151, train.py:210-211 (the same in "
            "tianrun-chen/SAM-Adapter-PyTorch@665145d models/sam.py:148-151, train.py:172): the "
            "model has no prompt encoder but its own no_mask_embed and pe_layer, so loading "
            "Meta's checkpoint with strict=False skips prompt_encoder.no_mask_embed and "
            "prompt_encoder.pe_layer; the dense prompt starts from N(0, 1) and trains, the "
            "decoder's positional encoding is a fresh random matrix, frozen"
        ),
        ours=(
            "both start from the foundation model: its no_mask_embed (trained) and its "
            "positional-encoding matrix (frozen)"
        ),
        why=(
            "the re-draw comes from a key mismatch under strict=False, not from a stated design; "
            "it would fine-tune the pre-trained decoder against a positional encoding it was "
            "never trained with"
        ),
        claims=_ADAPTED_MODEL_CLAIMS,
        where=("backdoorbook.models.sam.add_adapters", "backdoorbook.models.sam.mask_logits"),
    ),
)


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
        sparse prompt and the learned dense "no mask" embedding. The decoder's positional
        encoding is the prompt encoder's (``get_dense_pe``).

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


def high_frequency(images: torch.Tensor, fraction: float = 0.25) -> torch.Tensor:
    """The magnitude of the high-frequency part of ``images`` ``[..., H, W]``, per channel.

    The centred 2-D spectrum loses the square of frequencies ``k_y, k_x`` in ``[-l, l)`` with
    ``l = floor(sqrt(H * W * fraction) / 2)`` (a quarter of the spectrum at the default); the
    rest is transformed back and the absolute value of its real part returned. This is the
    hand-crafted input of SAM-Adapter's prompt generator (its ``freq_nums = 0.25``).
    """
    if not 0 < fraction < 1:
        raise ValueError(f"the removed fraction of the spectrum must be in (0, 1), got {fraction}")
    h, w = images.shape[-2:]
    half = int(math.sqrt(h * w * fraction) // 2)
    keep = torch.ones(h, w, device=images.device)
    keep[h // 2 - half : h // 2 + half, w // 2 - half : w // 2 + half] = 0
    spectrum = torch.fft.fftshift(torch.fft.fft2(images, norm="forward"), dim=(-2, -1))
    spectrum = torch.fft.ifftshift(spectrum * keep, dim=(-2, -1))
    return torch.fft.ifft2(spectrum, norm="forward").real.abs()


class PromptGenerator(nn.Module):
    """SAM-Adapter's prompt generator: one additive prompt ``[B, H', W', dim]`` per encoder block.

    With ``r = dim // scale_factor`` (SAM-Adapter hard-codes ``scale_factor = 32``):

    - hand-crafted tokens: :func:`high_frequency` of the (normalised) input image, embedded by
      a ``3 -> r`` convolution with kernel and stride the patch size;
    - embedding tokens: ``Linear(dim -> r)`` of the patch tokens (before the positional
      embedding);
    - prompt of block ``i``: ``shared_mlp(GELU(lightweight_mlps[i](hand-crafted + embedding)))``
      with one ``Linear(r -> dim)`` shared by all blocks.

    Linear weights start from a normal with std 0.02 truncated to [-2, 2], the convolution from
    a normal with std ``sqrt(2 / (patch² r))``, biases at zero: the prompts are non-zero from
    the first step.

    ``upstream_reshape`` (default ``True``) reproduces how SAM-Adapter's code flattens the patch
    tokens for the embedding branch: the channels-last ``[B, H', W', dim]`` tensor is reshaped
    to ``[B, dim, H' W']`` without a permute, so "token" ``p`` of the branch holds channel
    ``(c H' W' + p) mod dim`` of token ``(c H' W' + p) // dim`` in its feature ``c``, a mixture
    of tokens from across the image (SAM-Adapter-PyTorch issue #134). The published SAM-Adapter
    and BadSAM models were trained with it. ``False`` gives each token its own features.
    """

    def __init__(
        self,
        dim: int,
        depth: int,
        patch_size: int,
        scale_factor: int = 32,
        freq_fraction: float = 0.25,
        upstream_reshape: bool = True,
    ):
        super().__init__()
        width = dim // scale_factor
        if width < 1 or depth < 1:
            raise ValueError(
                f"need depth >= 1 and dim // scale_factor >= 1, got depth {depth}, "
                f"dim {dim}, scale_factor {scale_factor}"
            )
        self.freq_fraction = freq_fraction
        self.upstream_reshape = upstream_reshape
        self.handcrafted_embed = nn.Conv2d(3, width, kernel_size=patch_size, stride=patch_size)
        self.embedding_generator = nn.Linear(dim, width)
        self.lightweight_mlps = nn.ModuleList(
            nn.Sequential(nn.Linear(width, width), nn.GELU()) for _ in range(depth)
        )
        self.shared_mlp = nn.Linear(width, dim)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02, a=-2.0, b=2.0)
                nn.init.zeros_(module.bias)
        fan_out = patch_size * patch_size * width
        nn.init.normal_(self.handcrafted_embed.weight, std=math.sqrt(2.0 / fan_out))
        nn.init.zeros_(self.handcrafted_embed.bias)

    def forward(self, images: torch.Tensor, tokens: torch.Tensor) -> list[torch.Tensor]:
        """Prompts for every block from the encoder's input ``images`` ``[B, 3, S, S]`` and its
        patch tokens ``[B, H', W', dim]``."""
        b, h, w, dim = tokens.shape
        handcrafted = self.handcrafted_embed(high_frequency(images, self.freq_fraction))
        handcrafted = handcrafted.flatten(2).transpose(1, 2)  # [B, H'W', r], row-major tokens
        if self.upstream_reshape:
            flat = tokens.reshape(b, dim, h * w).transpose(1, 2)
        else:
            flat = tokens.reshape(b, h * w, dim)
        features = handcrafted + self.embedding_generator(flat)
        return [
            self.shared_mlp(mlp(features)).reshape(b, h, w, dim) for mlp in self.lightweight_mlps
        ]


class PromptedImageEncoderViT(ImageEncoderViT):
    """SAM's image encoder with :class:`PromptGenerator` prompts added to every block's input.

    :func:`add_adapters` turns a built :class:`ImageEncoderViT` into one (its parameters and
    their names unchanged, ``prompt_generator`` added). The prompts are computed once per image
    from the input and the patch tokens; block ``i`` then runs on ``prompt_i + x``.
    """

    prompt_generator: PromptGenerator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.patch_embed(x)
        prompts = self.prompt_generator(x, tokens)
        x = tokens if self.pos_embed is None else tokens + self.pos_embed
        for prompt, block in zip(prompts, self.blocks, strict=True):
            x = block(prompt + x)
        return self.neck(x.permute(0, 3, 1, 2))


class Adapter(nn.Module):
    """Bottleneck MLP ``x + up(GELU(down(x)))`` on ``[B, H, W, dim]`` tokens; ``up`` starts at zero
    (identity). The ablation of :func:`add_adapters`."""

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


#: What :func:`add_adapters` can insert.
ADAPTERS = ("prompt_generator", "bottleneck")

#: Name prefixes of the parameters adaptation trains besides the adapters.
_TRAINED_PREFIXES = ("mask_decoder.", "prompt_encoder.no_mask_embed.")


def add_adapters(
    sam: Sam,
    adapter: str = "prompt_generator",
    *,
    scale_factor: int = 32,
    upstream_reshape: bool = True,
    bottleneck: int = 16,
) -> int:
    """Give ``sam`` trainable adapters and set what trains; returns #trainable parameters.

    Args:
        adapter: ``"prompt_generator"``: SAM-Adapter's :class:`PromptGenerator` at
            ``image_encoder.prompt_generator`` (``scale_factor`` and ``upstream_reshape`` as
            there); ``"bottleneck"``: an :class:`Adapter` of width ``bottleneck`` at
            ``image_encoder.blocks[i].adapter``, run on each block's input by a forward
            pre-hook.

    Afterwards only the adapter, the mask decoder and ``prompt_encoder.no_mask_embed`` (the
    learned dense prompt of the prompt-free set-up) have ``requires_grad``; everything else is
    frozen. The foundation's parameters keep their names.
    """
    encoder = sam.image_encoder
    if isinstance(encoder, PromptedImageEncoderViT) or any(
        hasattr(block, "adapter") for block in encoder.blocks
    ):
        raise ValueError("this model already has adapters")
    proj = encoder.patch_embed.proj
    dim, device = proj.out_channels, sam.pixel_mean.device
    if adapter == "prompt_generator":
        encoder.prompt_generator = PromptGenerator(
            dim,
            len(encoder.blocks),
            proj.kernel_size[0],
            scale_factor=scale_factor,
            upstream_reshape=upstream_reshape,
        ).to(device)
        encoder.__class__ = PromptedImageEncoderViT
        trained = ("image_encoder.prompt_generator.", *_TRAINED_PREFIXES)
    elif adapter == "bottleneck":
        if bottleneck < 1:
            raise ValueError(f"bottleneck must be >= 1, got {bottleneck}")
        for block in encoder.blocks:
            block.adapter = Adapter(dim, bottleneck).to(device)
            block.register_forward_pre_hook(_run_adapter)
        trained = _TRAINED_PREFIXES
    else:
        raise ValueError(f"unknown adapter {adapter!r}; choose one of {', '.join(ADAPTERS)}")
    for name, param in sam.named_parameters():
        param.requires_grad = name.startswith(trained) or ".adapter." in name
    return trainable_parameters(sam)


def trainable_parameters(model: nn.Module) -> int:
    """Number of parameters with ``requires_grad``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
