import math
from types import SimpleNamespace

import pytest
import torch
from diffusers import DDIMScheduler, DDPMPipeline
from shipped import shipped_record

from backdoorbook.artifacts import save_artifact
from backdoorbook.defenses.zip import (
    BlockDownsample,
    Grayscale,
    ddim_step,
    timestep_schedule,
    transform_only,
    zip_operators,
    zip_purify,
)
from backdoorbook.evaluation.classification import backdoor_metrics, backdoor_outcomes
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
    torch.testing.assert_close(transform_only(images, [Grayscale()]), Grayscale().project(images))


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


def test_zip_shape_range_and_seeded_determinism(tiny_unet, images, one_thread):
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
        shipped_record(unet_config=TINY.to_dict()),
        directory=tmp_path,
    )
    unet, _ = load_ddpm_artifact("tiny_ddpm", directory=tmp_path)
    x, t = torch.rand(1, 3, 8, 8), torch.tensor([500])
    torch.testing.assert_close(unet(x, t).sample, tiny_unet(x, t).sample, atol=1e-2, rtol=1e-2)


def ddim_reference() -> DDIMScheduler:
    """diffusers' DDIM sampler on the prior's training schedule (no clipping, ᾱ = 1 after t = 0)."""
    return DDIMScheduler.from_config(
        ddpm_scheduler().config, clip_sample=False, set_alpha_to_one=True, steps_offset=0
    )


@pytest.mark.parametrize("eta", [1.0, 0.5])
def test_every_step_of_zips_reverse_process_is_diffusers_ddim(eta):
    scheduler, steps = ddim_reference(), 20
    scheduler.set_timesteps(steps)
    times = timestep_schedule(1000, steps)
    assert scheduler.timesteps.tolist() == times
    abar = scheduler.alphas_cumprod.double()
    g = torch.Generator().manual_seed(0)
    for i, t in enumerate(times):
        sample, eps, noise = (torch.randn(2, 3, 8, 8, generator=g) for _ in range(3))
        at_next = float(abar[times[i + 1]]) if i + 1 < len(times) else 1.0
        ours = ddim_step(sample, eps, float(abar[t]), at_next, eta, noise)
        theirs = scheduler.step(eps, t, sample, eta=eta, variance_noise=noise).prev_sample
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)


def zip_from_the_paper(images, unet, *, steps, lam, eta, scale, seed):
    """ZIP written from the paper's equations, independently of the library's operators and step.

    The operators are dense matrices on flattened images, their pseudo-inverses come from
    ``torch.linalg.pinv``, and each step is diffusers' DDIM step from the rectified sample. The
    noise is drawn as ``zip_purify`` draws it (``x_T``, then one draw per step), in one batch.
    """
    n, c, h, w = images.shape
    d = c * h * w
    gray = torch.kron(torch.full((1, c), 1 / c), torch.eye(h * w))  # [HW, CHW]: channel mean
    pool = torch.zeros(h // scale, w // scale, h, w)
    for i in range(h):
        for j in range(w):
            pool[i // scale, j // scale, i, j] = 1 / scale**2
    down = torch.kron(torch.eye(c), pool.reshape(-1, h * w))  # [C·HW/s², CHW]: block means
    operators = [a.double() for a in (gray, down)]
    projections = [torch.linalg.pinv(a) @ a for a in operators]
    scheduler = ddim_reference()
    scheduler.set_timesteps(steps)
    g = torch.Generator().manual_seed(seed)
    x = (images * 2 - 1).reshape(n, d).double()
    observed = [x @ p.T for p in projections]  # A†y = A†A x, one per operator
    xt = torch.randn(images.shape, generator=g)
    for t in scheduler.timesteps:
        eps = unet(xt, t).sample
        abar = float(scheduler.alphas_cumprod[t])
        flat_x, flat_e = xt.reshape(n, d).double(), eps.reshape(n, d).double()
        hats = [
            abar**0.5 * y + flat_x - flat_x @ p.T + (1 - abar) ** 0.5 * flat_e @ p.T
            for y, p in zip(observed, projections)
        ]
        weight = abar**lam
        xhat = ((1 - weight) * sum(hats) / len(hats) + weight * flat_x).float().reshape(xt.shape)
        noise = torch.randn(images.shape, generator=g)
        xt = scheduler.step(eps, t, xhat, eta=eta, variance_noise=noise).prev_sample
    return ((xt + 1) / 2).clamp(0, 1)


class RandomPrior(torch.nn.Module):
    """A random UNet's ε on top of a shrunk oracle: ``0.9 x_t / sqrt(1 - ᾱ_t) + 0.3 unet(x_t, t)``.

    A bare random ε is uncorrelated with ``x_t``, so the null-space part grows like
    ``1/sqrt(ᾱ_T)`` and most pixels end clamped, which would hide a wrong update; this prior keeps
    every pixel inside (0, 1) while ε stays a nonlinear, time-dependent random network.
    """

    def __init__(self, unet, alphas_cumprod):
        super().__init__()
        self.unet, self.alphas_cumprod = unet, alphas_cumprod

    def forward(self, x, t):
        t = t.reshape(-1)[:1].long()
        scale = 0.9 / math.sqrt(1 - float(self.alphas_cumprod[t]))
        return SimpleNamespace(sample=scale * x + 0.3 * self.unet(x, t).sample)


@pytest.mark.parametrize("eta", [1.0, 0.5])
def test_zip_purify_equals_the_paper_with_a_random_unet(images, eta, one_thread):
    torch.manual_seed(1)
    abar = ddpm_scheduler().alphas_cumprod
    prior = RandomPrior(ddpm_unet(TINY).eval(), abar)
    settings = dict(steps=5, lam=3.0, seed=4)
    with torch.no_grad():
        expected = zip_from_the_paper(images, prior, scale=2, eta=eta, **settings)
        ours, other_eta = (
            zip_purify(images, prior, abar, zip_operators(2), eta=e, progress=False, **settings)
            for e in (eta, 1.5 - eta)
        )
    assert ((ours > 0) & (ours < 1)).all()  # nothing hidden by the final clamp
    torch.testing.assert_close(ours, expected, atol=1e-4, rtol=0)
    assert (ours - other_eta).abs().max() > 1e-2  # the comparison sees the DDIM noise scale


class Brightness(torch.nn.Module):
    """Class 1 for images brighter than mid-grey, else class 0 (class 2 never wins)."""

    def forward(self, x):
        m = x.mean((1, 2, 3))
        return torch.stack([0.5 - m, m - 0.5, torch.full_like(m, -1.0)], 1)


def test_backdoor_outcomes_are_the_per_image_metrics():
    clean = torch.tensor([0.2, 0.2, 0.7, 0.2]).view(4, 1, 1, 1).expand(4, 3, 2, 2)
    poisoned = torch.tensor([0.9, 0.3, 0.9, 0.8]).view(4, 1, 1, 1).expand(4, 3, 2, 2)
    labels = torch.tensor([0, 0, 0, 2])
    out = backdoor_outcomes(Brightness(), clean, poisoned, labels, target=1)
    assert out["CA"].tolist() == [100, 100, 0, 0]
    assert out["PA"].tolist() == [0, 100, 0, 0]
    assert out["ASR"].tolist() == [100, 0, 100, 100]
    rates = backdoor_metrics(Brightness(), clean, poisoned, labels, target=1)
    assert {k: v.mean() for k, v in out.items()} == {k: r.value for k, r in rates.items()}
    with pytest.raises(ValueError, match="non-target classes"):
        backdoor_outcomes(Brightness(), clean, poisoned, torch.tensor([0, 1, 0, 2]), target=1)
