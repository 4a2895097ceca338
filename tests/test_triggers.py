import pytest
import torch

from backdoorbook.attacks import triggers


@pytest.fixture
def images():
    return torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def test_checkerboard_pattern():
    board = triggers.checkerboard(3, channels=1)[0]
    assert board.tolist() == [[1, 0, 1], [0, 1, 0], [1, 0, 1]]


def test_badnets_changes_only_the_patch(images):
    out = triggers.badnets(images, size=3, margin=1)
    assert out.shape == images.shape
    assert torch.equal(out[:, :, 28:31, 28:31], triggers.checkerboard(3).expand(4, -1, -1, -1))
    mask = torch.ones(32, 32, dtype=torch.bool)
    mask[28:31, 28:31] = False
    assert torch.equal(out[:, :, mask], images[:, :, mask])
    top_left = triggers.badnets(images, size=2, margin=0, corner="top_left")
    assert torch.equal(top_left[:, :, :2, :2], triggers.checkerboard(2).expand(4, -1, -1, -1))


def test_blended_is_a_convex_combination(images):
    pattern = triggers.blend_pattern((3, 32, 32), seed=1)
    out = triggers.blended(images, pattern, alpha=0.2)
    torch.testing.assert_close(out, 0.8 * images + 0.2 * pattern)
    assert torch.equal(triggers.blended(images, pattern, alpha=0.0), images)
    assert torch.equal(pattern, triggers.blend_pattern((3, 32, 32), seed=1))


def test_wanet_zero_strength_is_identity_and_warp_is_smooth(images):
    field = triggers.wanet_field(32, k=4, seed=0)
    assert field.shape == (1, 32, 32, 2)
    torch.testing.assert_close(triggers.wanet(images, field, strength=0.0), images)
    warped = triggers.wanet(images, field, strength=0.5)
    assert warped.shape == images.shape and 0 <= warped.min() and warped.max() <= 1
    assert 0 < (warped - images).abs().mean() < 0.2
    constant = torch.full((1, 3, 32, 32), 0.3)
    torch.testing.assert_close(triggers.wanet(constant, field, strength=1.0), constant)


def test_sig_adds_a_column_sinusoid():
    flat = torch.full((1, 3, 8, 8), 0.5)
    out = triggers.sig(flat, delta=0.1, frequency=2)
    expected = 0.5 + 0.1 * torch.sin(2 * torch.pi * torch.arange(8) * 2 / 8)
    torch.testing.assert_close(out[0, 1, 5], expected)
    assert torch.equal(out[:, :, 0], out[:, :, 7])


def test_inputs_are_not_modified(images):
    before = images.clone()
    triggers.badnets(images)
    triggers.sig(images)
    assert torch.equal(images, before)


@pytest.mark.parametrize(
    "call",
    [
        lambda x: triggers.badnets(x[0]),
        lambda x: triggers.badnets(x * 2),
        lambda x: triggers.badnets(x, corner="middle"),
        lambda x: triggers.badnets(x, size=40),
        lambda x: triggers.blended(x, torch.rand(3, 16, 16)),
        lambda x: triggers.blended(x, torch.rand(3, 32, 32), alpha=1.5),
        lambda x: triggers.wanet(x, triggers.wanet_field(16)),
        lambda x: triggers.sig(x, delta=-1),
        lambda x: triggers.badnets((x * 255).byte()),
    ],
)
def test_bad_arguments_raise(images, call):
    with pytest.raises(ValueError):
        call(images)


@pytest.mark.parametrize("name", ["badnets", "blended", "wanet", "sig"])
def test_every_trigger_rejects_channels_last_images_naming_the_layout(name):
    from backdoorbook.attacks.poisoning import build_trigger

    channels_last = torch.rand(2, 32, 32, 3)
    with pytest.raises(ValueError, match=r"channels-last.*\[N, C, H, W\]"):
        build_trigger(name)(channels_last)
    with pytest.raises(ValueError, match=r"\[N, 3, H, W\]"):
        build_trigger(name)(torch.rand(32, 32, 3))
