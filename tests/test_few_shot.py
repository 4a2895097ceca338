"""Few-shot support: the episode sampler, the Baseline++ cosine head (against PyTorch's weight
normalisation), its fine-tuning (against Adam on that reference), the rates of a fine-tuned and
of a nearest-prototype victim, class cohesion and the 95 % interval."""

import math
import os

import numpy as np
import pytest
import torch
from torch.nn.utils.parametrizations import weight_norm

from backdoorbook.data.episodes import EpisodeSampler
from backdoorbook.evaluation.few_shot import (
    class_cohesion,
    class_means,
    episode_rates,
    mean_ci95,
    prototype_rates,
    query_accuracy,
)
from backdoorbook.models.conv4 import conv4_backbone, downsample_images
from backdoorbook.models.heads import CosineClassifier
from backdoorbook.training.cosine_head import (
    finetune_cosine_classifier,
    finetune_cosine_classifiers,
)
from backdoorbook.training.optim import epoch_batches

POOL = torch.arange(20).repeat_interleave(30) + 80  # 20 classes (labels 80..99), 30 images each


def test_sampler_is_deterministic_and_episodes_differ():
    a, b = EpisodeSampler(POOL, 5, 5, 15, seed=3), EpisodeSampler(POOL, 5, 5, 15, seed=3)
    for i in (0, 7):
        ea, eb = a.episode(i), b.episode(i)
        assert ea.classes == eb.classes
        assert torch.equal(ea.support_index, eb.support_index) and torch.equal(
            ea.query_index, eb.query_index
        )
    assert not torch.equal(a.episode(0).support_index, a.episode(1).support_index)
    assert not torch.equal(
        a.episode(0).support_index, EpisodeSampler(POOL, 5, 5, 15, seed=4).episode(0).support_index
    )


def test_episode_classes_and_images_are_disjoint_and_labelled_consistently():
    sampler = EpisodeSampler(POOL, n_way=5, k_shot=5, n_query=15, seed=0)
    for i in range(10):
        e = sampler.episode(i)
        assert len(set(e.classes)) == 5 and set(e.classes) <= set(range(80, 100))
        assert len(e.support_index) == 25 and len(e.query_index) == 75
        assert not set(e.support_index.tolist()) & set(e.query_index.tolist())
        assert len(set(e.support_index.tolist())) == 25 and len(set(e.query_index.tolist())) == 75
        for index, local in ((e.support_index, e.support_labels), (e.query_index, e.query_labels)):
            assert torch.equal(POOL[index], torch.tensor(e.classes)[local])
        assert torch.equal(e.support_labels, torch.arange(5).repeat_interleave(5))


def test_sampler_rejects_impossible_episodes():
    with pytest.raises(ValueError, match="21-way"):
        EpisodeSampler(POOL, n_way=21)
    with pytest.raises(ValueError, match="exceed"):
        EpisodeSampler(POOL, k_shot=20, n_query=15)


def _reference_head(weight: torch.Tensor, scale: float) -> torch.nn.Module:
    """Baseline++'s head from PyTorch's own weight normalisation: a bias-free Linear whose rows
    are ``g_c * v_c / ||v_c||`` (``g`` initialised to ``||v_c||``), on ``x / (||x|| + 1e-5)``,
    times ``scale``."""
    linear = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=False)
    linear.weight.data.copy_(weight)
    linear = weight_norm(linear, dim=0)

    class Reference(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = linear

        def forward(self, x):
            return scale * self.linear(x / (x.norm(dim=1, keepdim=True) + 1e-5))

    return Reference()


def test_cosine_classifier_equals_a_weight_normalised_linear_head():
    torch.manual_seed(0)
    head = CosineClassifier(16, 5, scale=3.0)
    x = torch.randn(7, 16)
    reference = _reference_head(head.weight.detach(), 3.0)
    g = reference.linear.parametrizations.weight.original0.detach().flatten()
    assert torch.allclose(head.gain, g)  # the gain starts at ||v_c||: about 1/sqrt(3)
    assert 0.4 < head.gain.mean() < 0.75
    with torch.no_grad():
        head.gain.mul_(torch.linspace(0.5, 2.0, 5))  # a learnt gain, not the initial one
        reference.linear.parametrizations.weight.original0.copy_(head.gain[:, None])
    logits = head(x)
    assert logits.shape == (7, 5)
    assert torch.allclose(logits, reference(x), atol=1e-6)
    assert (logits.abs() <= 3.0 * head.gain + 1e-5).all()
    assert torch.allclose(head(3.5 * x), logits, atol=1e-5)
    with pytest.raises(ValueError, match="features"):
        head(torch.randn(7, 15))


def test_finetuning_equals_adam_on_the_weight_normalised_reference(one_thread):
    """Directions and per-class norms both trained, as a weight-normalised Linear is by Adam."""
    n_way, dim, support, batch, epochs, lr, scale, seed = 4, 12, 11, 3, 6, 3e-3, 3.0, 5
    features = torch.randn(support, dim, generator=torch.Generator().manual_seed(0))
    labels = torch.arange(support) % n_way
    head = finetune_cosine_classifier(
        features, labels, n_way, epochs=epochs, batch_size=batch, lr=lr, scale=scale, seed=seed
    )
    torch.manual_seed(seed)
    reference = _reference_head(CosineClassifier(dim, n_way, scale).weight.detach(), scale)
    start = reference.linear.parametrizations.weight.original0.detach().flatten().clone()
    optimiser = torch.optim.Adam(reference.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for index in epoch_batches(support, batch, generator):
            loss = torch.nn.functional.cross_entropy(reference(features[index]), labels[index])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    weight = reference.linear.parametrizations.weight
    assert torch.allclose(head.weight, weight.original1, atol=1e-6)
    assert torch.allclose(head.gain, weight.original0.flatten(), atol=1e-6)
    assert not torch.allclose(head.gain, start, atol=1e-3)  # the norms did move
    assert not head.training


def test_finetuning_fits_separable_support_and_batched_equals_single(one_thread):
    centres = torch.eye(5, 32) * 4
    labels = torch.arange(5).repeat_interleave(3)
    features = centres[labels] + 0.3 * torch.randn(
        15, 32, generator=torch.Generator().manual_seed(0)
    )
    head = finetune_cosine_classifier(features, labels, 5, epochs=30)
    assert torch.equal(head(features).argmax(1), labels)
    other = torch.randn(15, 32, generator=torch.Generator().manual_seed(1))
    shuffled = labels[torch.randperm(15, generator=torch.Generator().manual_seed(2))]
    both = finetune_cosine_classifiers(
        torch.stack([features, other]), torch.stack([labels, shuffled]), 5, epochs=30
    )
    alone = finetune_cosine_classifier(other, shuffled, 5, epochs=30)
    for batched, single in ((both[0], head), (both[1], alone)):
        assert torch.allclose(batched.weight, single.weight, atol=1e-5)
        assert torch.allclose(batched.gain, single.gain, atol=1e-5)
    assert not torch.allclose(both[0].gain, both[1].gain, atol=1e-3)


def test_episode_rates_by_hand():
    head = CosineClassifier(2, 2)
    head.weight.data = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    head.gain.data = torch.ones(2)
    queries = torch.tensor([[1.0, 0.1], [0.2, 1.0], [1.0, 0.0], [0.9, 0.1]])  # predicted 0, 1, 0, 0
    labels = torch.tensor([0, 1, 1, 1])
    triggered = torch.tensor(
        [[0.0, 1.0], [1.0, 0.0], [1.0, 0.2], [0.1, 1.0]]
    )  # predicted 1, 0, 0, 1
    accuracy, asr = episode_rates(head, queries, labels, triggered, target=0)
    assert accuracy == pytest.approx(50.0)
    assert asr == pytest.approx(200.0 / 3)  # the three non-target queries: predictions 0, 0, 1


def test_query_accuracy_over_some_classes_by_hand():
    head = CosineClassifier(2, 3)
    head.weight.data = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    head.gain.data = torch.ones(3)
    queries = torch.tensor([[1.0, 0.1], [0.2, 1.0], [1.0, 0.0], [-1.0, 0.2]])  # -> 0, 1, 0, 2
    labels = torch.tensor([0, 1, 2, 2])
    assert query_accuracy(head, queries, labels) == pytest.approx(75.0)
    assert query_accuracy(head, queries, labels, torch.tensor([2])) == pytest.approx(50.0)
    assert query_accuracy(head, queries, labels, torch.tensor([0, 1])) == pytest.approx(100.0)
    with pytest.raises(ValueError, match="no query"):
        query_accuracy(head, queries, labels, torch.tensor([4]))


def test_prototype_rates_by_hand():
    support = torch.tensor([[2.0, 0.0], [1.0, 0.2], [0.0, 3.0], [0.2, 1.0]])
    support_labels = torch.tensor([0, 0, 1, 1])  # prototypes along x (class 0) and y (class 1)
    queries = torch.tensor([[1.0, 0.1], [0.1, 1.0], [0.6, 0.5]])
    labels = torch.tensor([0, 1, 1])  # predicted 0, 1, 0
    triggered = torch.tensor([[5.0, 0.1], [0.9, 0.1], [0.1, 0.9]])  # predicted 0, 0, 1
    accuracy, asr = prototype_rates(support, support_labels, queries, labels, triggered, 0)
    assert accuracy == pytest.approx(200.0 / 3)
    assert asr == pytest.approx(50.0)  # the two class-1 queries: one sent to the target
    # cosine similarity: scaling a support feature does not move the prototype's direction
    scaled = support * torch.tensor([[3.0], [3.0], [0.5], [0.5]])
    assert prototype_rates(scaled, support_labels, queries, labels, triggered, 0) == (accuracy, asr)


def test_class_means_and_cohesion():
    features = torch.tensor([[1.0, 0.0], [0.0, 1.0], [3.0, 3.0]])
    labels = torch.tensor([0, 0, 1])
    assert torch.allclose(class_means(features, labels), torch.tensor([[0.5, 0.5], [3.0, 3.0]]))
    cohesion = class_cohesion(features, labels)
    assert torch.allclose(cohesion, torch.tensor([2**-0.5, 2**-0.5, 1.0]))  # one image: exactly 1
    with pytest.raises(ValueError, match="no support"):
        class_means(features, torch.tensor([0, 0, 2]))


def test_mean_ci95_matches_a_hand_computation():
    mean, half = mean_ci95([50.0, 60.0, 70.0, 80.0])
    # population std of (50, 60, 70, 80): sqrt((225 + 25 + 25 + 225) / 4) = sqrt(125)
    assert mean == pytest.approx(65.0)
    assert half == pytest.approx(1.96 * math.sqrt(125) / 2)
    assert mean_ci95(np.full(9, 42.0)) == (42.0, 0.0)
    with pytest.raises(ValueError):
        mean_ci95([])


def test_conv4_feature_size_and_downsampling():
    backbone = conv4_backbone(width=8).eval()
    assert backbone(torch.rand(2, 3, 42, 42)).shape == (2, 8 * 2 * 2)
    images = torch.rand(1, 3, 84, 84)
    small = downsample_images(images)
    assert small.shape == (1, 3, 42, 42)
    assert torch.allclose(small[0, :, 0, 0], images[0, :, :2, :2].mean((1, 2)))


@pytest.mark.skipif(
    not os.environ.get("BACKDOORBOOK_DATA", "").strip(),
    reason="BACKDOORBOOK_DATA is unset (CI sets it)",
)
def test_shipped_backbone_loads_frozen_and_novel_classes_are_unseen():
    from backdoorbook import data
    from backdoorbook.book.profiles import get_profile
    from backdoorbook.models.conv4 import load_flba_backbone

    backbone = load_flba_backbone(get_profile("05_flba").backbone_artifact)  # sha256 verified
    assert not backbone.training and not any(p.requires_grad for p in backbone.parameters())
    assert backbone(torch.rand(2, 3, 42, 42)).shape == (2, 256)
    splits = data.class_splits("miniimagenet")
    assert len(splits["train"]) == 64 and len(splits["test"]) == 20
    assert not set(splits["train"]) & set(splits["test"])


def test_few_shot_bar_measure_ranks_the_trained_backbone_above_a_random_one(one_thread):
    from backdoorbook.book.profiles import get_profile
    from backdoorbook.models.conv4 import conv4_backbone, load_flba_backbone
    from backdoorbook.recipes.flba_backbone import few_shot_accuracy

    trained = load_flba_backbone(get_profile("05_flba").backbone_artifact)
    torch.manual_seed(0)
    untrained = conv4_backbone().eval()
    scores = {
        name: few_shot_accuracy(model, 5, episodes=12, chunk=5, seed=3)
        for name, model in (("trained", trained), ("untrained", untrained))
    }
    for mean, half_width in scores.values():
        assert 0 <= mean <= 100 and half_width > 0
    assert scores["trained"][0] > scores["untrained"][0] + 5
    assert few_shot_accuracy(trained, 5, episodes=12, chunk=5, seed=3) == scores["trained"]
