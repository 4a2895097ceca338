"""Training sets, training and shipped-model loading of the models the IBA chapter compares."""

from dataclasses import replace

import pytest
import torch

from backdoorbook.artifacts import ArtifactError, save_artifact
from backdoorbook.attacks.iba import make_trigger
from backdoorbook.attacks.iba_training import (CONTROL, artifact_name, compared_keys, load_compared_model, recipe,
                                               train_from_clean, training_sets)
from backdoorbook.models.segmentation import small_deeplab
from backdoorbook.profiles import get_profile

VICTIM, TARGET, CLASSES = 2, 1, 3


def _tiny_profile(**changes):
    return replace(get_profile("03_iba", "ci"), width=4, poison_epochs=2, poison_batch_size=2, trigger_size=2,
                   margin=1, nni_band=(1.0, 4.0), prl_pixels=3, min_victim_pixels=2, poison_rates=(0.25, 0.5),
                   **changes)


def _scenes(n=8, size=16):
    """Left half class 0, right half class 1 (road), a 3x3 car (class 2) in the lower right, images random."""
    labels = torch.zeros(n, size, size, dtype=torch.long)
    labels[:, :, size // 2:] = TARGET
    labels[:, 10:13, 10:13] = VICTIM
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(0)), labels


def test_every_method_poisons_the_same_images_and_the_control_stays_clean():
    cfg = _tiny_profile()
    images, labels = _scenes()
    sets = training_sets(images, labels, make_trigger(2), cfg, victim=VICTIM, target=TARGET, seed=0)
    assert list(sets) == compared_keys(cfg.poison_rates)
    assert sets[CONTROL].poisoned == 0 and torch.equal(sets[CONTROL].images, images)
    for rate in cfg.poison_rates:
        touched = {m: (sets[(m, rate)].images != images).flatten(1).any(1) for m in ("baseline", "nni", "prl")}
        assert touched["baseline"].sum() == round(rate * len(images)) == sets[("nni", rate)].poisoned
        assert torch.equal(touched["baseline"], touched["nni"]) and torch.equal(touched["nni"], touched["prl"])
        for method in ("baseline", "nni"):
            y = sets[(method, rate)].labels[touched[method]]
            assert not (y == VICTIM).any()               # every car pixel of a poisoned map became road


def test_training_from_clean_starts_from_the_clean_weights_and_changes_them():
    torch.manual_seed(0)
    cfg = _tiny_profile()
    images, labels = _scenes(4)
    clean = small_deeplab(CLASSES, cfg.width).state_dict()
    sets = training_sets(images, labels, make_trigger(2), cfg, victim=VICTIM, target=TARGET)
    model, loss = train_from_clean(clean, sets[CONTROL], cfg, CLASSES, progress=False)
    assert loss > 0 and model(images).shape == (4, CLASSES, 16, 16)
    changed = [k for k, v in model.state_dict().items() if v.is_floating_point() and not torch.equal(v, clean[k])]
    assert changed


def test_shipped_model_loads_only_with_the_recipe_and_seed_it_was_trained_with(tmp_path):
    cfg = _tiny_profile()
    key = ("nni", 0.25)
    state = small_deeplab(CLASSES, cfg.width).state_dict()
    save_artifact(artifact_name(cfg, key), state, {"command": "test", "data_checksums": {}, "wall_time_s": 0.0,
                                                    "device": "cpu", "recipe": recipe(cfg), "seed": 0},
                  directory=tmp_path)
    model = load_compared_model(cfg, key, CLASSES, seed=0, directory=tmp_path)
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    with pytest.raises(ArtifactError, match="poison_epochs"):
        load_compared_model(replace(cfg, poison_epochs=3), key, CLASSES, directory=tmp_path)
    with pytest.raises(ArtifactError, match="seed"):
        load_compared_model(cfg, key, CLASSES, seed=1, directory=tmp_path)
    assert artifact_name(cfg, CONTROL) == "iba_camvid_control_w4_ds2"
    assert artifact_name(cfg, key) == "iba_camvid_nni_25pct_w4_ds2"
