"""Shipping and reloading the adapted models of the BadSAM chapter, and its horse split."""

from dataclasses import replace

import pytest
import torch

from backdoorbook.artifacts import ArtifactError, save_artifact
from backdoorbook.attacks.badsam import predict_masks
from backdoorbook.book.profiles import get_profile, recipe_of
from backdoorbook.data.tensor_views import horse_split
from backdoorbook.models.sam import build_sam
from backdoorbook.recipes.badsam_adapted import adapt_from_foundation, adapted_model

pytestmark = pytest.mark.usefixtures("one_thread")


def _record(cfg, **extra):
    return {
        "command": "test",
        "data_checksums": {},
        "wall_time_s": 0.0,
        "device": "cpu",
        "recipe": recipe_of(cfg),
        "seed": 0,
        **extra,
    }


def test_shipped_adapted_model_reproduces_the_adapted_one_and_refuses_other_recipes(tmp_path):
    cfg = replace(get_profile("01_badsam", "ci"), epochs=1, batch_size=2, adapter_bottleneck=4)
    foundation = build_sam(cfg.sam_config).state_dict()
    images = torch.rand(4, 3, 128, 128)
    masks = torch.zeros(4, 128, 128, dtype=torch.long)
    masks[:, 30:90, 40:100] = 1
    torch.manual_seed(0)
    state, info = adapt_from_foundation(foundation, cfg, images, masks, 0.5, progress=False)
    assert len(info["loss_per_epoch"]) == 1 and info["poisoned_images"] == 2
    trained_parts = (".adapter.", "mask_decoder.", "prompt_encoder.no_mask_embed.")
    assert all(any(part in k for part in trained_parts) for k in state)
    hypernetwork = [k for k in state if k.startswith("mask_decoder.output_hypernetworks_mlps.0.")]
    assert hypernetwork and not any(torch.equal(state[k], foundation[k]) for k in hypernetwork)

    torch.manual_seed(0)  # the same adaptation, through the chapter's path
    here, _ = adapted_model(
        foundation, replace(cfg, ship_adapted_models=False), 0.5, images, masks, progress=False
    )
    save_artifact(cfg.adapted_artifact(0.5), state, _record(cfg), directory=tmp_path)
    loaded, shipped_info = adapted_model(foundation, cfg, 0.5, images, masks, directory=tmp_path)
    assert shipped_info["command"] == "test"
    assert torch.equal(predict_masks(loaded, images), predict_masks(here, images))
    with pytest.raises(ArtifactError, match="'epochs': 2"):
        adapted_model(foundation, replace(cfg, epochs=2), 0.5, images, masks, directory=tmp_path)
    save_artifact(
        cfg.adapted_artifact(0.25), dict(list(state.items())[1:]), _record(cfg), directory=tmp_path
    )
    with pytest.raises(ArtifactError, match="1 names differ"):
        adapted_model(foundation, cfg, 0.25, images, masks, directory=tmp_path)
    assert cfg.adapted_artifact(0.05) == "badsam_mini_adapted_5pct"


def test_horse_split_is_seeded_disjoint_and_rejects_bad_sizes():
    x_train, y_train, x_test, y_test = horse_split(32, 20, seed=0)
    again = horse_split(32, 20, seed=0)
    assert torch.equal(again[2], x_test) and len(x_test) == 20 and len(x_train) + 20 == 328
    assert x_train.shape[1:] == (3, 32, 32) and y_test.dtype == torch.bool
    assert set(y_train.unique().tolist()) <= {0, 1}
    assert not torch.equal(horse_split(32, 20, seed=1)[2], x_test)
    with pytest.raises(ValueError, match="test_images"):
        horse_split(32, 328)
