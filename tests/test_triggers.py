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


def test_random_patch_reproduces_zips_draw_under_its_seed():
    # ZIP's BadNets patch, read from its code's draw after torch.manual_seed(1234) (values of the
    # uint8 tensor it writes randn * 255 into; sycny/ZIP attack/backdoorattack.py:99-101).
    authors = [
        [[228, 130, 41], [32, 13, 170], [241, 137, 202]],
        [[225, 63, 115], [247, 125, 107], [203, 131, 224]],
        [[212, 4, 141], [65, 154, 106], [239, 1, 176]],
    ]
    assert (triggers.random_patch(3, seed=1234) * 255).round().int().tolist() == authors
    other = triggers.random_patch(3, seed=0)
    assert other.shape == (3, 3, 3) and not torch.equal(other, triggers.random_patch(3))
    assert 0 <= other.min() and other.max() <= 1


def test_badnets_stamps_a_given_patch_at_zips_rows_and_columns(images):
    patch = triggers.random_patch(3)
    out = triggers.badnets(images, size=3, margin=3, patch=patch)
    assert torch.equal(out[:, :, 26:29, 26:29], patch.expand(4, -1, -1, -1))
    mask = torch.ones(32, 32, dtype=torch.bool)
    mask[26:29, 26:29] = False
    assert torch.equal(out[:, :, mask], images[:, :, mask])
    with pytest.raises(ValueError, match="patch must be"):
        triggers.badnets(images, size=4, patch=patch)


def test_grey_blend_pattern_is_one_channel_shared_by_rgb(images):
    pattern = triggers.grey_blend_pattern(32, seed=1234)
    torch.manual_seed(1234)  # ZIP's draw (attack/backdoorattack.py:155-156)
    authors = torch.randint(0, 255, size=(32, 32))
    assert pattern.shape == (1, 32, 32) and torch.equal((pattern[0] * 255).round().long(), authors)
    added = triggers.blended(images, pattern, alpha=0.2) - 0.8 * images
    torch.testing.assert_close(added, (0.2 * pattern).expand(4, 3, -1, -1))
    with pytest.raises(ValueError, match="pattern must be"):
        triggers.blended(images, torch.rand(2, 32, 32))


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


def test_wanet_fine_grid_is_zips_per_pixel_jitter(images):
    smooth, jitter = triggers.wanet_field(32, k=4, seed=0), triggers.wanet_field(32, k=256, seed=0)

    def neighbour_correlation(field):
        a, b = field[0, :, :-1, 0].flatten(), field[0, :, 1:, 0].flatten()
        return torch.corrcoef(torch.stack([a, b]))[0, 1]

    assert neighbour_correlation(smooth) > 0.9 and neighbour_correlation(jitter) < 0.5
    # BackdoorBox's WaNet (ZIP's victims, s = 0.5, grid_rescale 1): clamp(identity + s·noise/H),
    # then bilinear grid_sample with align_corners=True (WaNet.py:44,188-198).
    line = torch.linspace(-1, 1, 32)
    rows, cols = torch.meshgrid(line, line, indexing="ij")
    grid = torch.clamp(torch.stack((cols, rows), 2)[None] + 0.5 * jitter / 32, -1, 1)
    expected = torch.nn.functional.grid_sample(
        images, grid.expand(4, -1, -1, -1), align_corners=True
    )
    torch.testing.assert_close(triggers.wanet(images, jitter, strength=0.5), expected)
    assert not torch.allclose(expected, images)


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
