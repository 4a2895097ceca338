"""The SAM builder, checkpoint loader, adapters, loss and the pre-training helpers."""

import importlib
import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from tiny_sam import TINY_SAM

from backdoorbook.artifacts import artifact_provenance, load_artifact
from backdoorbook.data.tensor_views import resize_square
from backdoorbook.models.sam import (
    SAM_CONFIGS,
    PromptedImageEncoderViT,
    PromptGenerator,
    SamConfig,
    add_adapters,
    build_sam,
    high_frequency,
    load_sam_checkpoint,
    mask_logits,
)
from backdoorbook.recipes import mini_sam as pretrain_sam
from backdoorbook.recipes.common import RunContext
from backdoorbook.training.losses import mask_loss

reference = importlib.import_module(
    "segment_anything.build_sam"
)  # the package re-exports a function of that name
TINY = replace(TINY_SAM, patch_size=8)


@pytest.mark.parametrize("name", ["vit_b", "vit_l", "vit_h"])
def test_released_configs_match_segment_anything(monkeypatch, name):
    captured = {}
    monkeypatch.setattr(reference, "_build_sam", lambda **kw: captured.update(kw))
    reference.sam_model_registry[name]()
    cfg = SAM_CONFIGS[name]
    assert (cfg.encoder_dim, cfg.encoder_depth, cfg.encoder_heads, cfg.global_attn_indexes) == (
        captured["encoder_embed_dim"],
        captured["encoder_depth"],
        captured["encoder_num_heads"],
        tuple(captured["encoder_global_attn_indexes"]),
    )
    assert (cfg.image_size, cfg.patch_size, cfg.prompt_dim, cfg.window_size) == (1024, 16, 256, 14)


def test_vit_b_has_the_released_parameter_shapes_with_and_without_adapters():
    sam = build_sam("vit_b")
    ours = {k: v.shape for k, v in sam.state_dict().items()}
    theirs = {k: v.shape for k, v in reference.sam_model_registry["vit_b"]().state_dict().items()}
    assert ours == theirs
    add_adapters(sam)  # the adapters add keys of their own and rename none
    adapted = {k: v.shape for k, v in sam.state_dict().items()}
    assert {k: adapted[k] for k in theirs} == theirs
    assert all(k.startswith("image_encoder.prompt_generator.") for k in set(adapted) - set(theirs))


# non-default sizes: windowed attention with one global block, a one-layer two-way transformer
ODD = SamConfig(
    image_size=48,
    patch_size=8,
    encoder_dim=32,
    encoder_depth=2,
    encoder_heads=2,
    window_size=4,
    global_attn_indexes=(1,),
    prompt_dim=16,
    decoder_depth=1,
    decoder_heads=2,
    decoder_mlp_dim=24,
    mask_in_chans=4,
    iou_head_hidden_dim=12,
)


def _official_mask_logits(sam, images, points=None, boxes=None):
    """One image at a time through segment_anything's own MaskDecoder.forward and
    Sam.postprocess_masks."""
    size = sam.image_encoder.img_size
    embeddings = sam.image_encoder(sam.preprocess(images * 255.0))
    out = []
    for i in range(len(images)):
        point_prompt = None
        if points is not None:
            point_prompt = (points[i : i + 1], torch.ones(1, points.shape[1]))
        sparse, dense = sam.prompt_encoder(
            points=point_prompt, boxes=None if boxes is None else boxes[i : i + 1], masks=None
        )
        low_res, _ = sam.mask_decoder(
            image_embeddings=embeddings[i : i + 1],
            image_pe=sam.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=False,
        )
        out.append(sam.postprocess_masks(low_res, (size, size), (size, size)))
    return torch.cat(out)


@pytest.mark.parametrize("adapter", [None, "prompt_generator"])
def test_mask_logits_equal_the_official_decoder_and_postprocessing(adapter):
    torch.manual_seed(3)
    sam = build_sam(ODD)
    if adapter is not None:
        add_adapters(sam, adapter, scale_factor=8)
    with torch.no_grad():
        sam.prompt_encoder.no_mask_embed.weight.normal_()  # a dense prompt that is not zero
    images = torch.rand(3, 3, 48, 48)
    points = torch.tensor([[[5.0, 7], [30, 40]], [[44, 2], [20, 21]], [[0, 47], [47, 0]]])
    boxes = torch.tensor([[2.0, 3, 30, 40], [10, 10, 47, 20], [0, 0, 47, 47]])
    with torch.no_grad():
        for prompts in (
            {},
            {"points": points},
            {"boxes": boxes},
            {"points": points, "boxes": boxes},
        ):
            ours = mask_logits(sam, images, **prompts)
            theirs = _official_mask_logits(sam, images, **prompts)
            assert ours.shape == theirs.shape == (3, 1, 48, 48)
            assert theirs.std() > 1e-3  # a map that is not flat
            torch.testing.assert_close(ours, theirs, atol=2e-5, rtol=1e-4)


def test_mask_logits_shapes_for_every_prompt_kind():
    torch.manual_seed(0)
    sam = build_sam(TINY)
    images = torch.rand(3, 3, 32, 32)
    free = mask_logits(sam, images)
    boxed = mask_logits(sam, images, boxes=torch.tensor([[2.0, 2, 20, 20]]).repeat(3, 1))
    clicked = mask_logits(sam, images, points=torch.full((3, 1, 2), 10.0))
    for out in (free, boxed, clicked):
        assert out.shape == (3, 1, 32, 32) and torch.isfinite(out).all()
    assert not torch.allclose(free, boxed)
    # batched decoding equals decoding each image alone
    assert torch.allclose(free[1:2], mask_logits(sam, images[1:2]), atol=1e-5)
    with pytest.raises(ValueError):
        mask_logits(sam, torch.rand(1, 3, 16, 16))


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(1)
    sam = build_sam(TINY)
    path = tmp_path / "tiny_sam.pth"
    torch.save(sam.state_dict(), path)
    loaded = load_sam_checkpoint(path, TINY)
    images = torch.rand(2, 3, 32, 32)
    assert torch.equal(mask_logits(sam, images), mask_logits(loaded, images))
    with pytest.raises(ValueError, match="does not fit"):
        load_sam_checkpoint(path, "mini")
    with pytest.raises(FileNotFoundError):
        load_sam_checkpoint(tmp_path / "missing.pth", TINY)


def _train_two_steps(sam, images):
    opt = torch.optim.AdamW([p for p in sam.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(2):
        loss = mask_loss(mask_logits(sam, images), torch.ones(2, 32, 32))
        opt.zero_grad()
        loss.backward()
        opt.step()


@pytest.mark.parametrize("adapter", ["prompt_generator", "bottleneck"])
def test_adapters_train_only_what_they_should_and_keep_the_foundation_frozen(adapter):
    torch.manual_seed(2)
    sam = build_sam(TINY)
    images = torch.rand(2, 3, 32, 32)
    before = mask_logits(sam, images)
    frozen = {k: v.clone() for k, v in sam.image_encoder.state_dict().items()}
    trainable = add_adapters(sam, adapter, scale_factor=8, bottleneck=4)
    names = {n for n, p in sam.named_parameters() if p.requires_grad}
    adapter_names = {n for n in names if not n.startswith(("mask_decoder.", "prompt_encoder."))}
    assert names - adapter_names and all(
        n.startswith(("mask_decoder.", "prompt_encoder.no_mask_embed."))
        for n in names - adapter_names
    )
    if adapter == "bottleneck":  # zero-initialised: the model starts unchanged
        assert torch.allclose(before, mask_logits(sam, images), atol=1e-6)
        assert len(adapter_names) == 4 * TINY.encoder_depth
        assert all(".adapter." in n for n in adapter_names)
    else:  # SAM-Adapter's prompts are non-zero from the start
        assert not torch.allclose(before, mask_logits(sam, images), atol=1e-6)
        assert all(n.startswith("image_encoder.prompt_generator.") for n in adapter_names)
        assert len(adapter_names) == 2 * (3 + TINY.encoder_depth)  # conv, 2 linears, MLPs
    assert trainable == sum(p.numel() for n, p in sam.named_parameters() if n in names)
    adapted = mask_logits(sam, images).detach()
    _train_two_steps(sam, images)
    after = sam.image_encoder.state_dict()
    assert all(torch.equal(after[k], v) for k, v in frozen.items())  # foundation untouched
    assert not torch.allclose(adapted, mask_logits(sam, images))
    with pytest.raises(ValueError, match="already has adapters"):
        add_adapters(sam)
    with pytest.raises(ValueError, match="unknown adapter"):
        add_adapters(build_sam(TINY), "lora")


def test_released_keys_load_into_an_adapted_model():
    released = build_sam(TINY).state_dict()  # stands for a released checkpoint
    sam = build_sam(TINY)
    add_adapters(sam, scale_factor=8)
    result = sam.load_state_dict(released, strict=False)
    assert not result.unexpected_keys and result.missing_keys
    assert all(k.startswith("image_encoder.prompt_generator.") for k in result.missing_keys)
    assert all(torch.equal(sam.state_dict()[k], v) for k, v in released.items())


def test_high_frequency_removes_the_central_quarter_of_the_spectrum():
    s = 32  # l = int(sqrt(32 * 32 * 0.25) // 2) = 8: frequencies -8..7 on both axes go
    y, x = torch.meshgrid(torch.arange(s), torch.arange(s), indexing="ij")
    wave = lambda ky, kx: torch.cos(2 * math.pi * (ky * y + kx * x) / s)  # noqa: E731
    for ky, kx in ((0, 0), (1, 2), (7, 7), (-7, 3)):  # both of +-(ky, kx) inside: removed
        assert high_frequency(wave(ky, kx)[None]).abs().max() < 1e-5
    # ky = 8: the component at -8 is removed, the one at +8 kept, so half the wave survives
    torch.testing.assert_close(high_frequency(wave(8, 0)[None]), 0.5 * wave(8, 0)[None].abs())
    for ky, kx in ((0, 9), (12, 1), (9, 15)):  # outside on at least one axis: kept, as |cos|
        torch.testing.assert_close(high_frequency(wave(ky, kx)[None]), wave(ky, kx)[None].abs())
    assert high_frequency(torch.ones(2, 3, s, s)).abs().max() < 1e-6  # a constant is all k = 0
    with pytest.raises(ValueError):
        high_frequency(torch.ones(1, s, s), fraction=1.0)


def test_prompt_generator_sizes_and_initialisation():
    # ViT-L (width 1024, 24 blocks, patch 16) and ViT-B: the counts of SAM-Adapter's generator
    # (shared 32*1024+1024, embedding 1024*32+32, 24 MLPs of 32*32+32, conv 3*16*16*32+32)
    vit_l = PromptGenerator(1024, 24, 16)
    assert sum(p.numel() for p in vit_l.parameters()) == 33_792 + 32_800 + 24 * 1_056 + 24_608
    assert sum(p.numel() for p in PromptGenerator(768, 12, 16).parameters()) == 63_312
    weight = vit_l.embedding_generator.weight
    assert weight.std().item() == pytest.approx(0.02, rel=0.05) and weight.abs().max() < 2
    conv = vit_l.handcrafted_embed.weight
    assert conv.std().item() == pytest.approx(math.sqrt(2 / (16 * 16 * 32)), rel=0.05)
    biases = [m.bias for m in vit_l.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))]
    assert all(torch.equal(b, torch.zeros_like(b)) for b in biases)
    with pytest.raises(ValueError):
        PromptGenerator(16, 2, 8)  # 16 // 32 = 0 channels


@pytest.mark.parametrize("upstream", [True, False])
def test_prompt_generator_token_order(upstream):
    # With a black image the hand-crafted branch is zero, so a prompt depends on the patch tokens
    # only. SAM-Adapter's reshape gives "token" p the entries c * H'W' + p (c = 0..dim-1) of the
    # row-major (token, channel) flattening: token 0's 16 channels reach positions 0..15.
    torch.manual_seed(0)
    generator = PromptGenerator(16, 2, 4, scale_factor=4, upstream_reshape=upstream)
    images, tokens = torch.zeros(1, 3, 32, 32), torch.randn(1, 8, 8, 16)
    changed = tokens.clone()
    changed[0, 0, 0] += 1.0
    with torch.no_grad():
        moved = [
            (a - b).abs().sum(-1) > 1e-7
            for a, b in zip(generator(images, tokens), generator(images, changed))
        ]
    expected = torch.zeros(8, 8, dtype=torch.bool)
    if upstream:
        expected.view(-1)[:16] = True
    else:
        expected[0, 0] = True
    assert all(torch.equal(m[0], expected) for m in moved)


def test_prompted_encoder_adds_one_prompt_to_each_block_input():
    torch.manual_seed(4)
    sam = build_sam(TINY)
    plain = {k: v.clone() for k, v in sam.state_dict().items()}
    add_adapters(sam, scale_factor=8)
    encoder = sam.image_encoder
    assert isinstance(encoder, PromptedImageEncoderViT)
    x = torch.randn(2, 3, 32, 32)
    inputs, outputs = [], []
    hooks = [b.register_forward_pre_hook(lambda m, a: inputs.append(a[0])) for b in encoder.blocks]
    hooks += [b.register_forward_hook(lambda m, a, o: outputs.append(o)) for b in encoder.blocks]
    with torch.no_grad():
        encoder(x)
        tokens = encoder.patch_embed(x)
        prompts = encoder.prompt_generator(x, tokens)
    for hook in hooks:
        hook.remove()
    torch.testing.assert_close(inputs[0], tokens + encoder.pos_embed + prompts[0])
    torch.testing.assert_close(inputs[1], outputs[0] + prompts[1])
    with torch.no_grad():  # with a zero shared MLP the prompts vanish: the foundation's encoder
        encoder.prompt_generator.shared_mlp.weight.zero_()
        encoder.prompt_generator.shared_mlp.bias.zero_()
        reference_sam = build_sam(TINY)
        reference_sam.load_state_dict(plain)
        torch.testing.assert_close(encoder(x), reference_sam.image_encoder(x))


def test_mask_loss_by_hand():
    # logits 0 -> p = 0.5; all-ones target: BCE = ln 2; soft IoU = 1 - (0.5*4) / ((0.5 + 1 - 0.5)*4)
    # = 0.5
    assert mask_loss(torch.zeros(1, 1, 2, 2), torch.ones(1, 2, 2)).item() == pytest.approx(
        0.693147 + 0.5, abs=1e-5
    )
    target = torch.zeros(1, 1, 4, 4)
    target[..., :2, :] = 1
    assert mask_loss(40 * (2 * target - 1), target).item() < 1e-6


def test_resize_square_keeps_class_ids():
    image = np.zeros((10, 20, 3), np.uint8)
    mask = np.zeros((10, 20), np.uint8)
    mask[:, 10:] = 7
    images, masks = resize_square([image], [mask], 8)
    assert images.shape == (1, 3, 8, 8) and masks.shape == (1, 8, 8)
    assert set(masks.unique().tolist()) == {0, 7} and (masks[0, :, 4:] == 7).all()


def test_connected_components_and_prompts():
    labels = torch.tensor([[[0, 0, 1, 1], [2, 0, 1, 255], [2, 2, 0, 0]]])
    comp = pretrain_sam.connected_components(labels)
    assert comp[0, 1, 3] == 0  # ignored pixel
    regions = [
        set(map(tuple, torch.nonzero(comp[0] == i).tolist())) for i in comp.unique() if i > 0
    ]
    assert sorted(map(sorted, regions)) == sorted(
        map(
            sorted,
            [
                {(0, 0), (0, 1), (1, 1)},
                {(0, 2), (0, 3), (1, 2)},
                {(1, 0), (2, 0), (2, 1)},
                {(2, 2), (2, 3)},
            ],
        )
    )
    components, examples = pretrain_sam.region_examples(labels, 255, min_area=3)
    assert len(examples) == 3 and (examples[:, 0] == 0).all()
    mask = torch.zeros(1, 6, 6, dtype=torch.bool)
    mask[0, 1:3, 2:5] = True
    boxes, points = pretrain_sam.box_and_point(mask, torch.Generator().manual_seed(0))
    assert boxes.tolist() == [[2.0, 1.0, 4.0, 2.0]]
    x, y = points[0, 0].long().tolist()
    assert mask[0, y, x]


def test_pretraining_recipe_resumes_and_writes_a_verified_artifact(tmp_path):
    recipe = pretrain_sam.Recipe(
        steps=2, batch_size=2, images=8, eval_examples=4, checkpoint_every=1
    )
    checkpoint = tmp_path / "checkpoints" / "sam_smoke.safetensors"
    run = RunContext(commit="0" * 40, device=torch.device("cpu"), threads=1)
    path = pretrain_sam.train(
        recipe, "sam_smoke", run=run, checkpoint=checkpoint, directory=tmp_path
    )
    assert path.exists() and not checkpoint.exists()  # the checkpoint goes once the artifact exists
    record = artifact_provenance("sam_smoke", tmp_path)
    assert record["recipe_module"] == "backdoorbook.recipes.mini_sam" and record["steps"] == 2
    assert record["commit"] == "0" * 40  # the commit checked at the start of the run
    assert set(record["quality"]) >= {"box_prompt_iou", "point_prompt_iou"}
    sam = build_sam("mini")
    sam.load_state_dict(load_artifact("sam_smoke", tmp_path))


def test_shipped_foundation_model_loads():
    sam = build_sam("mini")
    sam.load_state_dict(
        load_artifact("mini_sam_camvid")
    )  # sha256 verified against the provenance record
