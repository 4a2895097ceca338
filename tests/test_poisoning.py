from dataclasses import asdict, replace

import pytest
import torch
from shipped import shipped_record

from backdoorbook.attacks import triggers
from backdoorbook.attacks.poisoning import (
    TRIGGER_NAMES,
    build_trigger,
    poison_classification_set,
    trigger_fingerprint,
)


@pytest.fixture
def data():
    g = torch.Generator().manual_seed(0)
    return torch.rand(100, 3, 32, 32, generator=g), torch.arange(100) % 5


def test_dirty_label_poisoning(data):
    images, labels = data
    out = poison_classification_set(images, labels, triggers.badnets, rate=0.1, target=2, seed=3)
    assert len(out.indices) == 10 and out.rate == 0.1
    assert torch.all(labels[out.indices] != 2)
    assert torch.all(out.labels[out.indices] == 2)
    assert torch.equal(out.images[out.indices], triggers.badnets(images[out.indices]))
    clean = torch.ones(100, dtype=torch.bool)
    clean[out.indices] = False
    assert torch.equal(out.images[clean], images[clean]) and torch.equal(
        out.labels[clean], labels[clean]
    )
    assert torch.equal(out.indices, out.indices.sort().values)


def test_seed_fixes_the_choice(data):
    images, labels = data
    a = poison_classification_set(images, labels, triggers.badnets, rate=0.2, target=0, seed=1)
    b = poison_classification_set(images, labels, triggers.badnets, rate=0.2, target=0, seed=1)
    c = poison_classification_set(images, labels, triggers.badnets, rate=0.2, target=0, seed=2)
    assert torch.equal(a.indices, b.indices) and not torch.equal(a.indices, c.indices)


def test_clean_label_keeps_labels(data):
    images, labels = data
    out = poison_classification_set(
        images, labels, triggers.sig, rate=0.1, target=1, clean_label=True
    )
    assert torch.equal(out.labels, labels) and torch.all(labels[out.indices] == 1)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(rate=0.0, target=0),
        dict(rate=0.5, target=9),
        dict(rate=0.3, target=0, clean_label=True),
    ],
)
def test_invalid_requests_raise(data, kwargs):
    with pytest.raises(ValueError):
        poison_classification_set(*data, triggers.badnets, **kwargs)


@pytest.mark.parametrize("name", TRIGGER_NAMES)
def test_build_trigger_is_deterministic_and_in_range(data, name):
    images = data[0][:4]
    out = build_trigger(name, seed=5)(images)
    assert out.shape == images.shape and 0 <= out.min() and out.max() <= 1
    assert torch.equal(out, build_trigger(name, seed=5)(images))
    assert not torch.equal(out, images)


def test_build_trigger_overrides_and_unknown_name(data):
    images = data[0][:2]
    strong = build_trigger("wanet", strength=1.0)(images)
    weak = build_trigger("wanet")(images)
    assert (strong - images).abs().mean() > (weak - images).abs().mean()
    with pytest.raises(ValueError, match="unknown trigger"):
        build_trigger("refool")


def test_build_trigger_keeps_its_defaults_and_gives_zips_ingredients(data):
    images = data[0][:2]
    assert torch.equal(build_trigger("badnets")(images), triggers.badnets(images, size=3, margin=1))
    colour = build_trigger("blended", seed=5).keywords["pattern"]
    assert torch.equal(colour, triggers.blend_pattern((3, 32, 32), seed=5))
    patch = build_trigger("badnets", pattern="random", margin=3, seed=7)
    expected = triggers.badnets(images, margin=3, patch=triggers.random_patch(3, seed=7))
    assert torch.equal(patch(images), expected)
    grey = build_trigger("blended", pattern="grey", seed=7).keywords["pattern"]
    assert torch.equal(grey, triggers.grey_blend_pattern(32, seed=7))
    fine = build_trigger("wanet", k=256, seed=7).keywords["field"]
    assert torch.equal(fine, triggers.wanet_field(32, k=256, seed=7))
    for name, kind in [("badnets", "grey"), ("blended", "random")]:
        with pytest.raises(ValueError, match="pattern must be"):
            build_trigger(name, pattern=kind)


def test_poisoning_may_draw_from_the_whole_set(data):
    images, labels = data
    out = poison_classification_set(
        images, labels, triggers.badnets, rate=0.5, target=2, seed=0, include_target=True
    )
    assert len(out.indices) == 50 and torch.all(out.labels[out.indices] == 2)
    assert 0 < int((labels[out.indices] == 2).sum()) < 20  # target-class samples are drawn too
    with pytest.raises(ValueError, match="dirty-label"):
        poison_classification_set(
            images, labels, triggers.sig, rate=0.1, target=1, clean_label=True, include_target=True
        )


def test_trigger_fingerprint_tells_triggers_apart():
    a = trigger_fingerprint(build_trigger("blended", pattern="grey", seed=1234))
    assert a == trigger_fingerprint(build_trigger("blended", pattern="grey", seed=1234))
    assert a != trigger_fingerprint(build_trigger("blended", pattern="grey", seed=1))
    assert a != trigger_fingerprint(build_trigger("blended", pattern="grey", alpha=0.25, seed=1234))


def _victim(directory, name, **changes):
    from backdoorbook.artifacts import save_artifact
    from backdoorbook.models import cifar_resnet
    from backdoorbook.recipes.zip_victims import recipe_for, victim_trigger

    torch.manual_seed(0)
    model = cifar_resnet(8, num_classes=10).eval()
    recipe = recipe_for(name)
    record = shipped_record(
        **{
            "depth": 8,
            "num_classes": 10,
            "recipe": asdict(recipe),
            "trigger_sha256": trigger_fingerprint(victim_trigger(recipe)),
            "target": recipe.target,
        }
        | changes
    )
    record = {key: value for key, value in record.items() if value is not None}  # None: drop it
    save_artifact(name, model.model.state_dict(), record, directory=directory)
    return model


def test_zip_victims_are_named_by_the_profile_only():
    from backdoorbook.book.profiles import ch02_zip
    from backdoorbook.recipes.zip_victims import RECIPES, recipe_for

    assert list(RECIPES) == list(ch02_zip.CI.victims)
    for name, recipe in RECIPES.items():
        assert name == f"zip_victim_{recipe.dataset}_{recipe.attack}"
    with pytest.raises(ValueError, match="no victim recipe"):
        recipe_for("zip_victim_cifar10_refool")


def test_a_victim_trained_under_another_seed_has_its_own_name_recipe_and_remake_command(tmp_path):
    from backdoorbook.artifacts import ArtifactError, for_seed
    from backdoorbook.recipes.zip_victims import RECIPES, load_victim, recipe_for

    name = "zip_victim_cifar10_blended"
    assert recipe_for(f"{name}_s2") == replace(RECIPES[name], seed=2)
    assert recipe_for(f"{name}_s2").trigger_seed == RECIPES[name].trigger_seed  # same trigger
    _victim(tmp_path, name)
    assert for_seed(name, 2, tmp_path) == name  # no seed-2 victim shipped: the default one
    _victim(tmp_path, f"{name}_s2", recipe=asdict(RECIPES[name]))  # trained under seed 0
    assert for_seed(name, 2, tmp_path) == f"{name}_s2"
    with pytest.raises(ArtifactError, match=f"--victims {name} --seeds 2"):
        load_victim(f"{name}_s2", directory=tmp_path)


def test_load_victim_rebuilds_model_and_trigger(tmp_path, data):
    from backdoorbook.recipes.zip_victims import load_victim

    name = "zip_victim_cifar10_wanet"
    model = _victim(tmp_path, name)
    loaded, trigger, provenance = load_victim(name, directory=tmp_path)
    images = data[0][:2]
    torch.testing.assert_close(loaded(images), model(images))
    expected = build_trigger("wanet", k=256, strength=0.5, seed=1234)(images)
    assert torch.equal(trigger(images), expected) and provenance["target"] == 0


def test_load_victim_refuses_another_recipe_or_a_changed_trigger(tmp_path, monkeypatch):
    from backdoorbook.artifacts import ArtifactError
    from backdoorbook.recipes.zip_victims import RECIPES, load_victim

    name = "zip_victim_cifar10_badnets"
    _victim(tmp_path, name, recipe={**asdict(RECIPES[name]), "target": 0})
    with pytest.raises(ArtifactError, match="was made with the recipe"):
        load_victim(name, directory=tmp_path)
    _victim(tmp_path, name, recipe=None)  # a victim made before recipes were recorded
    with pytest.raises(ArtifactError, match="lacks 'recipe'.*retrain it"):
        load_victim(name, directory=tmp_path)
    _victim(tmp_path, name)
    load_victim(name, directory=tmp_path)
    monkeypatch.setattr(triggers, "random_patch", lambda size, channels, seed: torch.ones(3, 3, 3))
    with pytest.raises(ArtifactError, match="trigger function has changed"):
        load_victim(name, directory=tmp_path)
