"""FLBA: trigger optimisation (against a re-implementation in the authors' normalised units),
attractive/repulsive PGD, the BadNets support baseline, one tiny episode."""

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from backdoorbook.attacks.flba import (
    MINIIMAGENET_MEAN,
    MINIIMAGENET_STD,
    TRIGGER_STEP,
    VARIANTS,
    FLBASettings,
    apply_patch,
    attack_episode,
    badnets_support,
    badnets_trigger,
    feature_gap,
    flba_perturb,
    flba_rates,
    flba_variants,
    optimise_trigger,
)
from backdoorbook.models.conv4 import Conv4, conv4_backbone


@pytest.fixture
def backbone():
    torch.manual_seed(0)
    return conv4_backbone(width=8).eval().requires_grad_(False)


def _support(n=10, size=32, seed=0):
    images = torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))
    images[0] = 0.0  # saturated images: the [0, 1] clip must bind
    images[1] = 1.0
    return images, torch.arange(5).repeat_interleave(n // 5)


def test_apply_patch_touches_only_the_bottom_right_corner():
    images = torch.zeros(2, 3, 16, 16)
    out = apply_patch(images, torch.ones(3, 4, 4))
    assert out[:, :, 12:, 12:].eq(1).all() and out.sum() == 2 * 3 * 16
    assert images.eq(0).all()


def test_trigger_optimisation_increases_the_feature_gap(backbone, one_thread):
    images, _ = _support()
    start = optimise_trigger(backbone, images, size=8, steps=0)
    assert torch.allclose(start, torch.tensor(MINIIMAGENET_MEAN)[:, None, None].expand(3, 8, 8))
    patch = optimise_trigger(backbone, images, size=8, steps=15, step_size=0.03)
    assert patch.shape == (3, 8, 8) and patch.min() >= 0 and patch.max() <= 1
    assert feature_gap(backbone, images, patch) > feature_gap(backbone, images, start) + 0.01
    with pytest.raises(ValueError, match="step_size"):
        optimise_trigger(backbone, images, size=8, steps=1, step_size=(0.01, 0.02))


def _authors_trigger(net, images, size, steps, step):
    """The trigger optimisation written in the authors' units: images normalised with the
    miniImageNet statistics, a full-size trigger starting at 0 and masked to the corner, the
    composed image (not the trigger) clamped to the normalised image of [0, 1] with min / max,
    signed descent steps of ``step`` normalised units. Returns the pasted patch in pixels."""
    mean = torch.tensor(MINIIMAGENET_MEAN, dtype=images.dtype)[:, None, None]
    std = torch.tensor(MINIIMAGENET_STD, dtype=images.dtype)[:, None, None]
    x = (images - mean) / std
    lower, upper = (0 - mean) / std, (1 - mean) / std
    mask = torch.zeros_like(x[0])
    mask[:, -size:, -size:] = 1
    target = net(x).detach()
    trigger = torch.zeros_like(x[0], requires_grad=True)
    for _ in range(steps):
        composed = torch.max(torch.min(x * (1 - mask) + trigger * mask, upper), lower)
        loss = torch.nn.functional.cosine_similarity(net(composed), target).mean()
        (grad,) = torch.autograd.grad(loss, trigger)
        trigger = (trigger.detach() - step * grad.sign()).requires_grad_(True)
    pasted = torch.max(torch.min(trigger.detach(), upper), lower) * std + mean
    return pasted[:, -size:, -size:]


class _PixelInput(torch.nn.Module):
    """``net((x - mean) / std)`` with the miniImageNet statistics in float64 (a flat patch at the
    mean is exactly 0 in ``net``'s units, so max-pool ties break as in the reference)."""

    def __init__(self, net):
        super().__init__()
        self.net = net
        self.mean = torch.tensor(MINIIMAGENET_MEAN, dtype=torch.float64)[:, None, None]
        self.std = torch.tensor(MINIIMAGENET_STD, dtype=torch.float64)[:, None, None]

    def forward(self, x):
        return self.net((x - self.mean) / self.std)


def test_trigger_equals_the_authors_recipe_in_normalised_units(one_thread):
    torch.manual_seed(3)
    net = Conv4(width=4).double().eval().requires_grad_(False)
    backbone = _PixelInput(net).eval()
    images, _ = _support(5, size=16)
    images = images.double()
    step = 0.3  # large steps, so that pixels leave [0, 1] and the clamp decides
    patch = optimise_trigger(
        backbone, images, size=6, steps=12, step_size=[step * s for s in MINIIMAGENET_STD]
    )
    reference = _authors_trigger(net, images, 6, 12, step)
    assert ((reference == 0) | (reference == 1)).any()  # the clamp did bind
    assert torch.allclose(patch, reference, atol=1e-9)
    assert TRIGGER_STEP == pytest.approx([0.02 * s for s in MINIIMAGENET_STD])
    assert TRIGGER_STEP == pytest.approx([0.00554, 0.00536, 0.00569], abs=1e-5)


def test_pgd_stays_in_the_eps_ball_and_the_unit_cube(backbone, one_thread):
    images, labels = _support()
    patch = torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(2))
    eps = 8 / 255
    adv = flba_perturb(backbone, images, labels, 0, patch, eps=eps, steps=5)
    assert adv.shape == images.shape
    assert (adv - images).abs().max() <= eps + 1e-6
    assert adv.min() >= 0 and adv.max() <= 1
    assert (adv - images).abs().max() > eps / 2  # it did move


def test_attraction_and_repulsion_move_features_the_right_way(backbone, one_thread):
    images, labels = _support()
    patch = optimise_trigger(backbone, images, size=8, steps=5, step_size=0.03)
    adv = flba_perturb(backbone, images, labels, 0, patch, steps=10, step_size=1 / 255, lam=0.0)
    with torch.no_grad():
        mu = backbone(apply_patch(images, patch)).mean(0, keepdim=True)
        before = F.cosine_similarity(backbone(images), mu, dim=1)
        after = F.cosine_similarity(backbone(adv), mu, dim=1)
    target = labels == 0
    assert (after[target] > before[target]).all()
    assert (after[~target] < before[~target]).all()


def test_variants_split_the_perturbation_by_class():
    clean, labels = torch.zeros(4, 3, 2, 2), torch.tensor([0, 0, 1, 2])
    perturbed = torch.ones(4, 3, 2, 2)
    out = flba_variants(clean, perturbed, labels, target=0)
    assert set(out) == set(VARIANTS)
    assert out["full"].eq(1).all()
    assert out["attractive_only"][:2].eq(1).all() and out["attractive_only"][2:].eq(0).all()
    assert out["repulsive_only"][:2].eq(0).all() and out["repulsive_only"][2:].eq(1).all()


def test_badnets_trigger_is_a_white_bottom_right_square():
    images = torch.full((2, 3, 12, 12), 0.3)
    out = badnets_trigger(images, size=4)
    assert out[:, :, -4:, -4:].eq(1).all()
    assert out[:, :, :-4].eq(0.3).all() and out[:, :, :, :-4].eq(0.3).all()


def test_badnets_support_poisons_and_relabels_non_target_images_only():
    images, labels = torch.full((25, 3, 32, 32), 0.5), torch.arange(5).repeat_interleave(5)
    poisoned = badnets_support(images, labels, target=2, rate=0.25, size=8, seed=0)
    assert poisoned.poisoned.sum() == 5 and not poisoned.poisoned[labels == 2].any()
    assert poisoned.labels[poisoned.poisoned].eq(2).all()
    assert torch.equal(poisoned.labels[~poisoned.poisoned], labels[~poisoned.poisoned])
    changed = (poisoned.images != images).flatten(1).any(1)
    assert torch.equal(changed, poisoned.poisoned)
    assert (
        badnets_support(images[:5], torch.arange(5), target=0, rate=0.1).poisoned.sum() == 1
    )  # at least one
    with pytest.raises(ValueError, match="rate"):
        badnets_support(images, labels, target=0, rate=0.0)


TINY = FLBASettings(
    patch_size=8, trigger_steps=2, pgd_steps=2, badnets_rates=(0.5,), finetune_epochs=3
)


def test_one_tiny_episode_reports_every_condition(backbone, one_thread):
    support, support_labels = _support(10)
    query, query_labels = _support(15, seed=1)
    outcome = attack_episode(backbone, support, support_labels, query, query_labels, TINY)
    assert list(outcome.rates) == [
        "clean",
        "badnets_0",
        "badnets_0.5",
        "flba",
        "flba_attractive_only",
        "flba_repulsive_only",
    ]
    for accuracy, asr in outcome.rates.values():
        assert 0 <= accuracy <= 100 and 0 <= asr <= 100
    # poison rate 0 is the clean head itself, scored under the white square
    assert outcome.rates["badnets_0"][0] == outcome.rates["clean"][0]
    assert outcome.patch.shape == (3, 8, 8) and outcome.perturbed.shape == support.shape
    assert list(outcome.intact) == ["badnets_0.5"]


def test_one_shot_poisoning_strands_classes_and_intact_accuracy_is_paired(backbone, one_thread):
    support, support_labels = _support(5)  # 5-way 1-shot
    query, query_labels = _support(15, seed=1)
    outcome = attack_episode(
        backbone,
        support,
        support_labels,
        query,
        query_labels,
        FLBASettings(
            patch_size=8,
            trigger_steps=1,
            pgd_steps=1,
            badnets_rates=(0.25, 0.5, 1.0),
            finetune_epochs=3,
        ),
    )
    # round(r x 4) non-target images poisoned, each the only example of its class
    assert [outcome.intact[f"badnets_{r:g}"].classes for r in (0.25, 0.5, 1.0)] == [4, 3, 1]
    alone = outcome.intact["badnets_1"]  # only the target class keeps a correct image
    target_queries = query_labels == 0
    assert 0 <= alone.accuracy <= 100 and 0 <= alone.clean_accuracy <= 100
    hits = alone.accuracy * int(target_queries.sum()) / 100  # a count of the target's queries
    assert hits == pytest.approx(round(hits))


def test_flba_rates_equal_the_episodes_full_attack(backbone, one_thread):
    support, support_labels = _support(10)
    query, query_labels = _support(15, seed=1)
    outcome = attack_episode(backbone, support, support_labels, query, query_labels, TINY, seed=3)
    args = (backbone, support, support_labels, query, query_labels, outcome.patch)
    assert flba_rates(*args, TINY, seed=3) == pytest.approx(outcome.rates["flba"])
    stronger = flba_rates(*args, replace(TINY, lam=0.0, pgd_steps=6), seed=3)
    assert stronger != outcome.rates["flba"]  # the settings reach the perturbation
