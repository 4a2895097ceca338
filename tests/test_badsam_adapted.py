"""Shipping and reloading the adapted models of the BadSAM chapter, and its horse split."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from shipped import shipped_record

from backdoorbook.artifacts import ArtifactError, save_artifact
from backdoorbook.attacks.badsam import predict_masks
from backdoorbook.book.profiles import get_profile, recipe_of
from backdoorbook.data.tensor_views import horse_split, resize_square
from backdoorbook.models.sam import build_sam
from backdoorbook.recipes.badsam_adapted import adapt_from_foundation, adapted_model

pytestmark = pytest.mark.usefixtures("one_thread")


def _record(cfg, **extra):
    return shipped_record(recipe=recipe_of(cfg), seed=0, **extra)


#: The recipe of the adapted models shipped before SAM-Adapter's prompt generator, the flip, the
#: trigger pasted before the resize and the per-epoch cosine to 1e-7 (their provenance records).
BOTTLENECK_RECIPE = {
    "sam_config": "mini",
    "test_images": 96,
    "epochs": 60,
    "batch_size": 4,
    "lr": 0.001,
    "adapter_bottleneck": 16,
    "trigger_fraction": 0.15,
}


def _pairs(n):
    g = np.random.default_rng(0)
    images = [g.integers(0, 256, (100 + 10 * i, 150, 3), dtype=np.uint8) for i in range(n)]
    masks = [np.zeros(x.shape[:2], np.uint8) for x in images]
    for m in masks:
        m[30:90, 40:100] = 1
    return images, masks


def test_shipped_adapted_model_reproduces_the_adapted_one_and_refuses_other_recipes(tmp_path):
    cfg = replace(get_profile("01_badsam", "ci"), epochs=1, batch_size=2)
    foundation = build_sam(cfg.sam_config).state_dict()
    images, masks = _pairs(4)
    torch.manual_seed(0)
    state, info = adapt_from_foundation(foundation, cfg, images, masks, 0.5, progress=False)
    assert len(info["loss_per_epoch"]) == 1 and info["poisoned_images"] == 2
    trained_parts = ("image_encoder.prompt_generator.", "mask_decoder.", "prompt_encoder.no_mask")
    assert all(k.startswith(trained_parts) for k in state)
    assert any(k.startswith("image_encoder.prompt_generator.") for k in state)
    hypernetwork = [k for k in state if k.startswith("mask_decoder.output_hypernetworks_mlps.0.")]
    assert hypernetwork and not any(torch.equal(state[k], foundation[k]) for k in hypernetwork)

    torch.manual_seed(0)  # the same adaptation, through the chapter's path
    here, _ = adapted_model(
        foundation, replace(cfg, ship_adapted_models=False), 0.5, images, masks, progress=False
    )
    save_artifact(cfg.adapted_artifact(0.5), state, _record(cfg), directory=tmp_path)
    loaded, shipped_info = adapted_model(foundation, cfg, 0.5, images, masks, directory=tmp_path)
    assert shipped_info["command"] == "test"
    x = resize_square(images, masks, 128)[0]
    assert torch.equal(predict_masks(loaded, x), predict_masks(here, x))
    with pytest.raises(ArtifactError, match="'epochs': 2"):
        adapted_model(foundation, replace(cfg, epochs=2), 0.5, images, masks, directory=tmp_path)
    old = {**_record(cfg), "recipe": {**BOTTLENECK_RECIPE, "epochs": 1, "batch_size": 2}}
    save_artifact(cfg.adapted_artifact(0.1), state, old, directory=tmp_path)
    with pytest.raises(
        ArtifactError,
        match="'adapter': 'prompt_generator'.*retrain it with: python -m "
        "backdoorbook.recipes.badsam_adapted$",
    ):
        adapted_model(foundation, cfg, 0.1, images, masks, directory=tmp_path)
    save_artifact(
        cfg.adapted_artifact(0.25), dict(list(state.items())[1:]), _record(cfg), directory=tmp_path
    )
    with pytest.raises(ArtifactError, match="1 names differ"):
        adapted_model(foundation, cfg, 0.25, images, masks, directory=tmp_path)
    assert cfg.adapted_artifact(0.05) == "badsam_mini_adapted_5pct"


def test_horse_split_is_seeded_disjoint_at_the_original_sizes_and_rejects_bad_sizes():
    fine_tuning, test = horse_split(20, seed=0)
    again = horse_split(20, seed=0)[1]
    assert len(test) == 20 and len(fine_tuning) + 20 == 328
    assert all(np.array_equal(a, b) for a, b in zip(again.images, test.images))
    shapes = {x.shape for x in fine_tuning.images + test.images}
    assert len(shapes) > 1 and all(s[2] == 3 for s in shapes)  # not resized
    assert all(m.shape == x.shape[:2] for x, m in zip(test.images, test.masks))
    assert set(np.unique(np.concatenate([m.ravel() for m in fine_tuning.masks]))) <= {0, 1}
    ids = lambda arrays: {x.tobytes()[:4096] for x in arrays.images}  # noqa: E731
    assert not ids(fine_tuning) & ids(test)
    assert ids(horse_split(20, seed=1)[1]) != ids(test)
    with pytest.raises(ValueError, match="test_images"):
        horse_split(328)
