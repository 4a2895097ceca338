import pytest
import torch

from backdoorbook.artifacts import ARTIFACTS_DIR
from backdoorbook.models.cifar_small import SMALL_ARCHITECTURES, InvertedResidual, cifar_small, load_cifar_small
from backdoorbook.models.train_cifar_targets import RECIPES, train_one


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("name", list(SMALL_ARCHITECTURES))
def test_small_targets_map_images_to_logits_and_stay_small(name):
    torch.manual_seed(0)
    model = cifar_small(name).eval()
    x = torch.rand(3, 3, 32, 32)
    assert model(x).shape == (3, 10)
    assert sum(p.numel() for p in model.parameters()) < 1_000_000  # artifacts of a few MB
    assert name in RECIPES


def test_inverted_residual_adds_identity_only_when_shapes_match():
    assert InvertedResidual(16, 16, 1, 4).residual and not InvertedResidual(16, 24, 1, 4).residual
    assert not InvertedResidual(16, 16, 2, 4).residual


def test_unknown_architecture_and_bad_vit_patch_are_errors():
    with pytest.raises(ValueError, match="unknown architecture 'resnet'"):
        cifar_small("resnet")
    with pytest.raises(ValueError, match="not a multiple of the patch size"):
        SMALL_ARCHITECTURES["vit"](patch=5)


def test_training_recipe_learns_a_separable_toy_problem():
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(64) % 2
    images = torch.rand(64, 3, 32, 32, generator=generator) * 0.5 + labels[:, None, None, None] * 0.5
    state, info = train_one("vit", images, labels, images, labels, epochs=3, device=torch.device("cpu"), seed=0,
                            batch_size=16)
    assert info["test_accuracy"] > 90 and info["steps"] == 12 and set(state) == set(cifar_small("vit").state_dict())


@pytest.mark.parametrize("name", [n for n in SMALL_ARCHITECTURES if (ARTIFACTS_DIR / f"cifar10_{n}.safetensors").exists()])
def test_shipped_targets_load_with_verified_checksums(name):
    model = load_cifar_small(name)
    assert not model.training and model(torch.rand(2, 3, 32, 32)).shape == (2, 10)
