import pytest
import torch

from backdoorbook.evaluation.classification import accuracy, attack_success_rate, predict
from backdoorbook.models import cifar_resnet, load_cifar_resnet_checkpoint
from backdoorbook.models.cifar_resnet import BasicBlock


@pytest.mark.parametrize("depth, params", [(20, 269_722), (56, 853_018)])
def test_cifar_resnet_shapes_and_parameter_counts(depth, params):
    model = cifar_resnet(depth)
    assert sum(p.numel() for p in model.parameters()) == params  # He et al. report 0.27M and 0.85M
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 10)


def test_option_a_shortcut_zero_pads_channels():
    block = BasicBlock(16, 32, stride=2)
    x = torch.rand(1, 16, 8, 8)
    out = block.shortcut(x)
    assert out.shape == (1, 32, 4, 4)
    assert torch.equal(out[:, 8:24], x[:, :, ::2, ::2])
    assert out[:, :8].abs().sum() == 0 and out[:, 24:].abs().sum() == 0


def test_bad_depth_is_an_error():
    with pytest.raises(ValueError, match="6n\\+2"):
        cifar_resnet(21)


def test_checkpoint_round_trip_strips_module_prefix(tmp_path):
    torch.manual_seed(0)
    source = cifar_resnet(20).eval()
    state = {
        f"module.{k}": v for k, v in source.model.state_dict().items() if "num_batches" not in k
    }
    path = tmp_path / "resnet20-test.th"
    torch.save({"state_dict": state, "best_prec1": 90.0}, path)
    loaded = load_cifar_resnet_checkpoint(path, 20)
    x = torch.rand(4, 3, 32, 32)
    assert torch.equal(loaded(x), source(x))
    with pytest.raises(ValueError, match="does not hold a CIFAR ResNet-32"):
        load_cifar_resnet_checkpoint(path, 32)


def test_normalised_wrapper_checks_input_shape():
    with pytest.raises(ValueError, match="expected \\[N, 3, H, W\\]"):
        cifar_resnet(20)(torch.rand(3, 32, 32))


def test_predict_batches_and_restores_mode():
    model = cifar_resnet(20).train()
    x = torch.rand(10, 3, 32, 32)
    full = predict(model, x, batch_size=10)
    assert model.training
    assert torch.equal(predict(model, x, batch_size=3), full)
    assert full.dtype == torch.long and full.shape == (10,)


def test_accuracy_and_asr_denominators():
    labels = torch.tensor([0, 1, 2, 3])
    preds = torch.tensor([0, 1, 0, 0])
    assert accuracy(preds, labels).value == 50.0 and accuracy(preds, labels).n == 4
    asr = attack_success_rate(preds, labels, target=0)
    assert asr.n == 3 and asr.value == pytest.approx(200 / 3)  # the target-class input is excluded
    with pytest.raises(ValueError, match="empty denominator"):
        attack_success_rate(preds, torch.zeros(4, dtype=torch.long), target=0)
    with pytest.raises(ValueError, match="differ in shape"):
        accuracy(preds, labels[:3])


def test_truncated_resnet_checkpoint_is_an_error_naming_the_file(tmp_path):
    path = tmp_path / "resnet20-truncated.th"
    torch.save({"state_dict": cifar_resnet(20).model.state_dict()}, path)
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ValueError, match="resnet20-truncated.th"):
        load_cifar_resnet_checkpoint(path, 20)
