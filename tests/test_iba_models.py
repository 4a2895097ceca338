"""Training sets, training and shipped-model loading of the models the IBA chapter compares."""

from dataclasses import replace

import pytest
import torch
from shipped import shipped_record

from backdoorbook.artifacts import ArtifactError, save_artifact, used_artifact_seeds
from backdoorbook.attacks.iba import iba_trigger
from backdoorbook.book.profiles import get_profile, recipe_of
from backdoorbook.models.segmentation import small_deeplab
from backdoorbook.recipes.iba_models import (
    CONTROL,
    compared_keys,
    compared_models,
    train_from_clean,
    training_sets,
)

VICTIM, TARGET, CLASSES = 2, 1, 3


def _tiny_profile(**changes):
    settings = dict(
        width=4,
        poison_epochs=2,
        poison_batch_size=2,
        trigger_size=2,
        margin=1,
        nni_band=(1.0, 4.0),
        prl_pixels=40,
        min_victim_pixels=2,
        poison_rates=(0.25, 0.5),
    )
    return replace(get_profile("03_iba", "ci"), **{**settings, **changes})


def _scenes(n=8, size=16):
    """Left half class 0, right half class 1 (road), a 3x3 car (class 2) in the lower right, images
    random."""
    labels = torch.zeros(n, size, size, dtype=torch.long)
    labels[:, :, size // 2 :] = TARGET
    labels[:, 10:13, 10:13] = VICTIM
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(0)), labels


def test_every_method_poisons_the_same_images_and_the_control_stays_clean():
    cfg = _tiny_profile()
    images, labels = _scenes()
    sets = training_sets(images, labels, iba_trigger(2), cfg, victim=VICTIM, target=TARGET, seed=0)
    assert list(sets) == compared_keys(cfg.poison_rates)
    assert sets[CONTROL].poisoned == 0 and torch.equal(sets[CONTROL].images, images)
    for rate in cfg.poison_rates:
        touched = {
            m: (sets[(m, rate)].images != images).flatten(1).any(1)
            for m in ("baseline", "nni", "prl")
        }
        assert (
            touched["baseline"].sum() == round(rate * len(images)) == sets[("nni", rate)].poisoned
        )
        assert torch.equal(touched["baseline"], touched["nni"]) and torch.equal(
            touched["nni"], touched["prl"]
        )
        for method in ("baseline", "nni", "prl"):
            y = sets[(method, rate)].labels[touched[method]]
            assert not (y == VICTIM).any()  # every car pixel of a poisoned map became road
        assert torch.equal(sets[("nni", rate)].labels[~touched["nni"]], labels[~touched["nni"]])
        prl = sets[("prl", rate)].labels[~touched["prl"]]  # PRL relabels the unpoisoned maps too
        assert (prl != labels[~touched["prl"]]).flatten(1).any(1).all()
        assert (prl[labels[~touched["prl"]] == VICTIM] == VICTIM).all()


def test_training_from_clean_starts_from_the_clean_weights_and_changes_them():
    torch.manual_seed(0)
    cfg = _tiny_profile()
    images, labels = _scenes(4)
    clean = small_deeplab(CLASSES, cfg.width).state_dict()
    sets = training_sets(images, labels, iba_trigger(2), cfg, victim=VICTIM, target=TARGET)
    state, info = train_from_clean(clean, sets[CONTROL], cfg, CLASSES, progress=False)
    assert info["final_train_loss"] > 0 and info["poisoned_images"] == 0
    assert set(state) == set(clean)
    assert [k for k, v in state.items() if v.is_floating_point() and not torch.equal(v, clean[k])]


def test_compared_models_are_trained_here_or_loaded_only_with_their_recipe_and_seed(tmp_path):
    torch.manual_seed(0)
    cfg = _tiny_profile(poison_rates=(0.25,))
    images, labels = _scenes(4)
    clean = small_deeplab(CLASSES, cfg.width).state_dict()
    args = dict(victim=VICTIM, target=TARGET, num_classes=CLASSES, progress=False)
    here = compared_models(
        replace(cfg, ship_compared_models=False), clean, images, labels, iba_trigger(2), **args
    )
    assert list(here) == compared_keys(cfg.poison_rates)
    assert here[("nni", 0.25)][1]["poisoned_images"] == 1
    for key, (model, _) in here.items():
        record = shipped_record(recipe=recipe_of(cfg), seed=0, poisoned_images=1)
        save_artifact(cfg.compared_artifact(*key), model.state_dict(), record, directory=tmp_path)
    loaded = compared_models(cfg, clean, images, labels, iba_trigger(2), directory=tmp_path, **args)
    for key, (model, _) in loaded.items():
        expected = here[key][0].state_dict()
        assert all(torch.equal(v, expected[k]) for k, v in model.state_dict().items())
    changes = dict(poison_epochs=3, trigger_size=3, margin=0, nni_band=(0.0, 4.0), prl_pixels=4)
    for name, value in changes.items():  # the attack's settings belong to the recipe
        with pytest.raises(ArtifactError, match="was trained with"):
            compared_models(
                replace(cfg, **{name: value}),
                clean,
                images,
                labels,
                iba_trigger(2),
                directory=tmp_path,
                **args,
            )
    # another chapter seed loads the same shipped models: they keep the seed they were trained with
    other = compared_models(
        cfg, clean, images, labels, iba_trigger(2), seed=1, directory=tmp_path, **args
    )
    assert all(
        torch.equal(other[k][0].state_dict()[p], v)
        for k in other
        for p, v in loaded[k][0].state_dict().items()
    )
    assert used_artifact_seeds()[cfg.compared_artifact("nni", 0.25)] == 0
    assert cfg.compared_artifact("clean", 0.0) == "iba_camvid_control_w4_ds2"
    assert cfg.compared_artifact("nni", 0.25) == "iba_camvid_nni_25pct_w4_ds2"
