"""The SAM builder, checkpoint loader, adapters, loss and the pre-training helpers."""

import importlib

import numpy as np
import pytest
import torch

from backdoorbook.artifacts import artifact_provenance, load_artifact
from backdoorbook.data.tensor_views import resize_square
from backdoorbook.models.sam import (
    SAM_CONFIGS,
    SamConfig,
    add_adapters,
    build_sam,
    load_sam_checkpoint,
    mask_logits,
)
from backdoorbook.recipes import mini_sam as pretrain_sam
from backdoorbook.recipes.common import RunContext
from backdoorbook.training.losses import mask_loss

reference = importlib.import_module(
    "segment_anything.build_sam"
)  # the package re-exports a function of that name
TINY = SamConfig(
    image_size=32,
    patch_size=8,
    encoder_dim=32,
    encoder_depth=2,
    encoder_heads=2,
    window_size=0,
    global_attn_indexes=(),
    prompt_dim=32,
    decoder_heads=2,
    decoder_mlp_dim=64,
    mask_in_chans=4,
    iou_head_hidden_dim=32,
)


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


def test_vit_b_has_the_released_parameter_shapes():
    ours = {k: v.shape for k, v in build_sam("vit_b").state_dict().items()}
    theirs = {k: v.shape for k, v in reference.sam_model_registry["vit_b"]().state_dict().items()}
    assert ours == theirs


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


def test_adapters_start_as_identity_and_train_only_what_they_should():
    torch.manual_seed(2)
    sam = build_sam(TINY)
    images = torch.rand(2, 3, 32, 32)
    before = mask_logits(sam, images)
    frozen = {k: v.clone() for k, v in sam.image_encoder.state_dict().items()}
    trainable = add_adapters(sam, bottleneck=4)
    assert torch.allclose(before, mask_logits(sam, images), atol=1e-6)
    names = {n for n, p in sam.named_parameters() if p.requires_grad}
    assert names and all(
        ".adapter." in n or n.startswith(("mask_decoder.", "prompt_encoder.no_mask_embed."))
        for n in names
    )
    assert len([n for n in names if ".adapter." in n]) == 4 * TINY.encoder_depth
    assert trainable == sum(p.numel() for n, p in sam.named_parameters() if n in names)
    opt = torch.optim.AdamW([p for p in sam.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(2):
        loss = mask_loss(mask_logits(sam, images), torch.ones(2, 32, 32))
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = sam.image_encoder.state_dict()
    assert all(
        torch.equal(after[k], v) for k, v in frozen.items()
    )  # released keys unchanged and untouched
    assert not torch.allclose(before, mask_logits(sam, images))
    with pytest.raises(ValueError):
        add_adapters(sam)


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
