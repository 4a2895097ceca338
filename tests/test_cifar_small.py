"""Chapter 6's project-trained targets: architectures, their recipe, and the shipped artifacts."""

from dataclasses import replace

import pytest
import torch

from backdoorbook.book.profiles import get_profile
from backdoorbook.models.cifar_small import (
    SMALL_ARCHITECTURES,
    InvertedResidual,
    cifar_small,
    load_cifar_target,
)
from backdoorbook.recipes.cifar_targets import RECIPES, build, train

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("key", list(RECIPES))
def test_recipe_architectures_map_images_to_logits(key):
    torch.manual_seed(0)
    model = build(RECIPES[key]).eval()
    assert model(torch.rand(3, 3, 32, 32)).shape == (3, 10)
    assert sum(p.numel() for p in model.parameters()) < 2_000_000  # artifacts of a few MB


def test_inverted_residual_adds_identity_only_when_shapes_match():
    assert InvertedResidual(16, 16, 1, 4).residual and not InvertedResidual(16, 24, 1, 4).residual
    assert not InvertedResidual(16, 16, 2, 4).residual


def test_unknown_architecture_and_bad_vit_patch_are_errors():
    with pytest.raises(ValueError, match="unknown architecture 'resnet'"):
        cifar_small("resnet")
    with pytest.raises(ValueError, match="not a multiple of the patch size"):
        SMALL_ARCHITECTURES["vit"](patch=5)


def test_recipe_learns_a_separable_toy_problem_and_resumes_from_its_checkpoint(tmp_path):
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(64) % 2
    images = (
        torch.rand(64, 3, 32, 32, generator=generator) * 0.5 + labels[:, None, None, None] * 0.5
    )
    recipe = replace(
        RECIPES["vit"],
        config={"patch": 8, "dim": 16, "depth": 1, "heads": 2},
        epochs=3,
        batch_size=16,
        warmup_epochs=1,
    )
    data = (images, labels, images, labels)
    state, info = train(recipe, *data, device=torch.device("cpu"), progress=False)
    assert info["quality"]["test_accuracy"] > 90 and info["steps"] == 12
    assert set(state) == set(build(recipe).state_dict())
    checkpoint = tmp_path / "vit.safetensors"
    train(recipe, *data, device=torch.device("cpu"), checkpoint=checkpoint, progress=False)
    resumed, again = train(
        recipe, *data, device=torch.device("cpu"), checkpoint=checkpoint, progress=False
    )  # every epoch already done: nothing is retrained
    assert again["train_accuracy_per_epoch"] == info["train_accuracy_per_epoch"]
    assert all(torch.equal(resumed[k], state[k]) for k in state)


@pytest.mark.parametrize(
    "artifact",
    [artifact for _, artifact in get_profile("06_transferability").target_artifacts]
    + [get_profile("06_transferability").control_artifact],
)
def test_shipped_targets_and_control_load_with_verified_checksums(artifact):
    model = load_cifar_target(artifact)
    assert not model.training and model(torch.rand(2, 3, 32, 32)).shape == (2, 10)
