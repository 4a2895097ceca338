"""Few-shot support: the episode sampler, the Baseline++ cosine head, fine-tuning and the 95 %
interval."""

import math
import os

import numpy as np
import pytest
import torch

from backdoorbook.data.episodes import EpisodeSampler
from backdoorbook.evaluation.few_shot import episode_rates, mean_ci95
from backdoorbook.models.conv4 import conv4_backbone, downsample_images
from backdoorbook.models.heads import CosineClassifier
from backdoorbook.training.cosine_head import (
    finetune_cosine_classifier,
    finetune_cosine_classifiers,
)

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


def test_cosine_classifier_shapes_bounds_and_scale_invariance():
    head = CosineClassifier(16, 5, scale=2.0)
    x = torch.randn(7, 16)
    logits = head(x)
    assert logits.shape == (7, 5)
    assert logits.abs().max() <= 2.0 + 1e-5
    assert torch.allclose(head(3.5 * x), logits, atol=1e-6)
    expected = 2.0 * torch.nn.functional.cosine_similarity(x[:, None], head.weight[None], dim=2)
    assert torch.allclose(logits, expected, atol=1e-5)
    with pytest.raises(ValueError, match="features"):
        head(torch.randn(7, 15))


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
    assert torch.allclose(both[0].weight, head.weight, atol=1e-5)
    alone = finetune_cosine_classifier(other, shuffled, 5, epochs=30)
    assert torch.allclose(both[1].weight, alone.weight, atol=1e-5)


def test_episode_rates_by_hand():
    head = CosineClassifier(2, 2)
    head.weight.data = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    queries = torch.tensor([[1.0, 0.1], [0.2, 1.0], [1.0, 0.0], [0.9, 0.1]])  # predicted 0, 1, 0, 0
    labels = torch.tensor([0, 1, 1, 1])
    triggered = torch.tensor(
        [[0.0, 1.0], [1.0, 0.0], [1.0, 0.2], [0.1, 1.0]]
    )  # predicted 1, 0, 0, 1
    accuracy, asr = episode_rates(head, queries, labels, triggered, target=0)
    assert accuracy == pytest.approx(50.0)
    assert asr == pytest.approx(200.0 / 3)  # the three non-target queries: predictions 0, 0, 1


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
