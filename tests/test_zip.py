import math
from types import SimpleNamespace

import pytest
import torch
from diffusers import DDPMPipeline

from backdoorbook.artifacts import save_artifact
from backdoorbook.defenses.zip import (
    BlockDownsample,
    Grayscale,
    timestep_schedule,
    transform_only,
    zip_operators,
    zip_purify,
)
from backdoorbook.models.ddpm import (
    DDPMConfig,
    ddpm_scheduler,
    ddpm_unet,
    load_ddpm_artifact,
    load_ddpm_checkpoint,
)

TINY = DDPMConfig(sample_size=8, block_out_channels=(8, 8), norm_num_groups=4)


@pytest.fixture
def images():
    return torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def tiny_unet():
    torch.manual_seed(0)
    return ddpm_unet(TINY).eval()


@pytest.mark.parametrize("op", [Grayscale(), BlockDownsample(2), BlockDownsample(4)])
def test_operator_identities(op, images):
    torch.testing.assert_close(op(op.pinv(op(images))), op(images))  # A A† A = A
    projected = op.project(images)
    torch.testing.assert_close(op.project(projected), projected)  # (A†A)² = A†A
    assert projected.shape == images.shape


def test_operators_by_hand():
    x = torch.arange(16.0).view(1, 1, 4, 4).expand(1, 3, 4, 4).clone()
    x[:, 1] += 3
    assert torch.equal(Grayscale()(x), x.mean(1, keepdim=True))
    assert torch.equal(Grayscale().pinv(Grayscale()(x))[:, 2], x[:, 1] - 2)
    down = BlockDownsample(2)(x)
    assert down[0, 0].tolist() == [[2.5, 4.5], [10.5, 12.5]]
    assert BlockDownsample(2).pinv(down)[0, 0, 1].tolist() == [2.5, 2.5, 4.5, 4.5]


def test_bad_operator_arguments(images):
    with pytest.raises(ValueError):
        BlockDownsample(0)
    with pytest.raises(ValueError):
        BlockDownsample(3)(images)
    with pytest.raises(ValueError):
        Grayscale().pinv(images)


def test_transform_only_is_the_mean_projection(images):
    out = transform_only(images, zip_operators(2))
    torch.testing.assert_close(
        out, (Grayscale().project(images) + BlockDownsample(2).project(images)) / 2
    )
    assert 0 <= out.min() and out.max() <= 1


def test_timestep_schedule_matches_zip():
    assert timestep_schedule(1000, 20) == list(range(950, -1, -50))
    with pytest.raises(ValueError):
        timestep_schedule(1000, 0)


class OracleZeroPrior(torch.nn.Module):
    """Predicts the noise that makes x0 = 0 (mid-grey), so ZIP's output can be computed by hand."""

    def __init__(self, alphas_cumprod):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        self.alphas_cumprod = alphas_cumprod

    def forward(self, x, t):
        return SimpleNamespace(sample=x / math.sqrt(1 - float(self.alphas_cumprod[t[0]])))


def test_zip_reduces_to_transform_only_with_a_null_prior(images):
    abar = ddpm_scheduler().alphas_cumprod
    prior, ops = OracleZeroPrior(abar), zip_operators(2)
    # λ → ∞: x̂ is fully consistent with the observation; the prior adds nothing, so ZIP = mean_k
    # A_k† y_k.
    out = zip_purify(images, prior, abar, ops, lam=1e6, progress=False)
    torch.testing.assert_close(out, transform_only(images, ops), atol=1e-4, rtol=0)
    # λ = 0: the blend keeps x_t, the input is ignored and the prior's x0 (grey) comes out.
    torch.testing.assert_close(
        zip_purify(images, prior, abar, ops, lam=0, progress=False),
        torch.full_like(images, 0.5),
        atol=1e-4,
        rtol=0,
    )


def test_zip_shape_range_and_seeded_determinism(tiny_unet, images):
    abar = ddpm_scheduler().alphas_cumprod
    ops = zip_operators(2)
    a = zip_purify(images, tiny_unet, abar, ops, steps=4, batch_size=2, seed=1, progress=False)
    b = zip_purify(images, tiny_unet, abar, ops, steps=4, batch_size=2, seed=1, progress=False)
    c = zip_purify(images, tiny_unet, abar, ops, steps=4, batch_size=2, seed=2, progress=False)
    assert a.shape == images.shape and 0 <= a.min() and a.max() <= 1
    assert torch.equal(a, b) and not torch.equal(a, c)
    with pytest.raises(ValueError):
        zip_purify(images[:, :1], tiny_unet, abar, ops)
    with pytest.raises(ValueError):
        zip_purify(images, tiny_unet, abar, [], progress=False)


def test_load_diffusers_checkpoint_directories(tmp_path, tiny_unet):
    pipeline = DDPMPipeline(unet=tiny_unet, scheduler=ddpm_scheduler())
    pipeline.save_pretrained(tmp_path / "pipeline")  # unet/ + scheduler/ subfolders
    tiny_unet.save_pretrained(tmp_path / "bare")  # config.json only, default schedule
    x, t = torch.rand(1, 3, 8, 8), torch.tensor([10])
    for folder in ("pipeline", "bare"):
        unet, scheduler = load_ddpm_checkpoint(tmp_path / folder)
        torch.testing.assert_close(unet(x, t).sample, tiny_unet(x, t).sample)
        torch.testing.assert_close(scheduler.alphas_cumprod, ddpm_scheduler().alphas_cumprod)
    with pytest.raises(FileNotFoundError):
        load_ddpm_checkpoint(tmp_path / "missing")


def test_load_project_artifact(tmp_path, tiny_unet):
    save_artifact(
        "tiny_ddpm",
        {k: v.half() for k, v in tiny_unet.state_dict().items()},
        {
            "command": "test",
            "data_checksums": {},
            "wall_time_s": 0,
            "device": "cpu",
            "unet_config": TINY.to_dict(),
        },
        directory=tmp_path,
    )
    unet, _ = load_ddpm_artifact("tiny_ddpm", directory=tmp_path)
    x, t = torch.rand(1, 3, 8, 8), torch.tensor([500])
    torch.testing.assert_close(unet(x, t).sample, tiny_unet(x, t).sample, atol=1e-2, rtol=1e-2)
