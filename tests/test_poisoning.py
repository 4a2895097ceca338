import pytest
import torch

from backdoorbook.attacks import triggers
from backdoorbook.attacks.poisoning import TRIGGER_NAMES, build_trigger, poison_classification_set


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


def test_load_victim_rebuilds_model_and_trigger(tmp_path, data):
    from backdoorbook.artifacts import save_artifact
    from backdoorbook.models import cifar_resnet
    from backdoorbook.recipes.zip_victims import load_victim

    torch.manual_seed(0)
    model = cifar_resnet(8, num_classes=5).eval()
    record = {
        "command": "test",
        "data_checksums": {},
        "wall_time_s": 0,
        "device": "cpu",
        "depth": 8,
        "num_classes": 5,
        "attack": "wanet",
        "trigger_overrides": {"strength": 1.0},
        "trigger_seed": 3,
        "target": 1,
    }
    save_artifact("victim", model.model.state_dict(), record, directory=tmp_path)
    loaded, trigger, provenance = load_victim("victim", directory=tmp_path)
    images = data[0][:2]
    torch.testing.assert_close(loaded(images), model(images))
    assert torch.equal(trigger(images), build_trigger("wanet", seed=3, strength=1.0)(images))
    assert provenance["target"] == 1
    save_artifact(
        "not_victim",
        model.model.state_dict(),
        {k: record[k] for k in list(record)[:4]},
        directory=tmp_path,
    )
    with pytest.raises(ValueError, match="not a victim"):
        load_victim("not_victim", directory=tmp_path)
