"""Chapter 4's defenses (CleanCLIP, TA-Cleaner, UBT) and a tiny end-to-end poisoning check."""

import random

import pytest
import torch
from test_clip import TINY

from backdoorbook.attacks.clip_poison import clip_trigger, poison_pairs
from backdoorbook.data.captions import CaptionedImages, caption_images
from backdoorbook.defenses.cleanclip import SYNONYMS, CleanCLIPLoss, augment_images, cleanclip, eda
from backdoorbook.defenses.ta_cleaner import TACleanerLoss, caption_subject, sub_captions
from backdoorbook.defenses.ubt import localise_tokens, pair_similarity, suspicious_pairs
from backdoorbook.evaluation.zero_shot import zero_shot_asr, zero_shot_classifier
from backdoorbook.models.mini_clip import mini_clip
from backdoorbook.training.contrastive import clip_objective, train_contrastive

CLASSES = ("cat", "dog", "hotdog", "golden retriever")
COLOURS = torch.tensor([[0.8, 0.2, 0.2], [0.2, 0.7, 0.2], [0.2, 0.3, 0.8], [0.85, 0.8, 0.2]])


def toy_set(n=320, seed=0):
    """Four classes of noisy solid-colour images, captioned like the chapter's data."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 4
    images = (
        COLOURS[labels][:, :, None, None] + 0.15 * torch.randn(n, 3, 32, 32, generator=g)
    ).clamp(0, 1)
    return CaptionedImages(
        images, labels, tuple(caption_images(images, labels, CLASSES, seed)), CLASSES
    )


def test_eda_is_seeded_and_keeps_captions_sensible():
    caption = "a bright picture of a red cat."
    views = [eda(caption, random.Random(s)) for s in range(30)]
    assert views == [eda(caption, random.Random(s)) for s in range(30)]
    assert all(v.endswith(".") and len(v) > 2 for v in views) and len(set(views)) > 3
    assert eda("cat.", random.Random(0)) == "cat."
    words = caption.rstrip(".").split()
    replaced = [
        v
        for v in views
        if len(v.split()) == len(words) and sorted(v.rstrip(".").split()) != sorted(words)
    ]
    assert replaced
    for v in replaced:  # a same-length view that is not a swap replaced words by their synonyms
        for new, old in zip(v.rstrip(".").split(), words):
            assert new == old or new in SYNONYMS.get(old, ())


def test_image_augmentation_is_seeded_and_in_range():
    images = torch.rand(8, 3, 32, 32)
    a = augment_images(images, torch.Generator().manual_seed(1))
    assert a.shape == images.shape and 0 <= a.min() and a.max() <= 1 and not torch.equal(a, images)
    assert torch.equal(a, augment_images(images, torch.Generator().manual_seed(1)))


def test_sub_captions():
    assert caption_subject("a photo of a golden retriever.", CLASSES) == "golden retriever"
    assert caption_subject("a photo of a hotdog.", CLASSES) == "hotdog"
    assert caption_subject("a photo.", CLASSES) is None
    rng = random.Random(0)
    positive, negative = sub_captions("a bright picture of a red dog.", CLASSES, rng)
    assert (
        positive == "a photo of a dog."
        and "dog" not in negative.split()
        and negative.startswith("a bright picture")
    )
    positive, negative = sub_captions(
        "a bright picture of a red dog.", CLASSES, rng, negatives="attribute"
    )
    assert negative.endswith(" dog.") and "red" not in negative
    with pytest.raises(ValueError):
        sub_captions("a dog.", CLASSES, rng, negatives="verb")


def test_ta_cleaner_adds_a_nonnegative_term_on_its_subset(one_thread):
    data = toy_set(64)
    model = mini_clip(TINY, seed=0)
    index = torch.arange(32)
    losses = {}
    for weight in (0.0, 1.0):
        objective = TACleanerLoss(
            model,
            data.images,
            data.captions,
            CLASSES,
            subcaption_weight=weight,
            subset_fraction=0.5,
            seed=3,
        )
        torch.manual_seed(0)
        losses[weight] = objective(index, 0).item()
        assert int(objective.subset(0).sum()) == 32
        assert not torch.equal(objective.subset(0).clone(), objective.subset(1))
    cleanclip_loss = CleanCLIPLoss(model, data.images, data.captions, seed=3)
    assert losses[0.0] == pytest.approx(cleanclip_loss(index, 0).item(), rel=1e-5)
    assert losses[1.0] > losses[0.0]


def test_localise_tokens_keeps_start_end_and_k_tokens(one_thread):
    model = mini_clip(TINY, seed=0).eval()
    captions = ["a bright picture of a red dog.", "a cat."]
    images = torch.rand(2, 3, 32, 32)
    full = model.tokenize(captions)
    assert torch.equal(localise_tokens(model, images, captions, None), full)
    local = localise_tokens(model, images, captions, 2)
    for row, ids in zip(local, full):
        kept = row[row != 0].tolist()
        assert kept[0] == 49406 and kept[-1] == 49407 and len(kept) == 4
        assert set(kept[1:-1]) <= set(ids[1:].tolist())


@pytest.fixture(scope="module")
def poisoned_toy():
    """A tiny CLIP trained on clean toy pairs and one trained with 10 % BadNets pairs captioned
    'hotdog'."""
    torch.set_num_threads(1)
    data = toy_set()
    trigger = clip_trigger("badnets", 32)
    poisoned, index = poison_pairs(data, trigger, count=32, target=2, seed=0)
    models = {}
    for name, train in (("clean", data), ("poisoned", poisoned)):
        model = mini_clip(TINY, seed=0)
        train_contrastive(
            model,
            len(train),
            clip_objective(model, train.images, train.captions),
            epochs=15,
            batch_size=64,
            lr=3e-3,
            seed=0,
            progress=False,
        )
        models[name] = model
    return data, poisoned, index, models, trigger


def test_poisoning_plants_a_backdoor(poisoned_toy):
    _, _, _, models, trigger = poisoned_toy
    test = toy_set(160, seed=1)
    triggered = trigger(test.images)
    asr = {
        name: zero_shot_asr(m, triggered, test.labels, zero_shot_classifier(m, CLASSES), 2)[1].value
        for name, m in models.items()
    }
    assert asr["poisoned"] > asr["clean"] + 30


def test_ubt_discovery_returns_the_most_similar_pairs_after_overfitting(poisoned_toy, one_thread):
    _, poisoned, _, models, _ = poisoned_toy
    model = models["poisoned"]
    before = {n: p.clone() for n, p in model.state_dict().items()}
    own = pair_similarity(model, poisoned.images, poisoned.captions)
    suspects, similarity = suspicious_pairs(
        model, poisoned.images, poisoned.captions, n_suspects=32, overfit_epochs=0, progress=False
    )
    assert torch.allclose(similarity, own) and torch.equal(
        suspects, own.topk(32).indices.sort().values
    )
    suspects, similarity = suspicious_pairs(
        model,
        poisoned.images,
        poisoned.captions,
        n_suspects=32,
        overfit_epochs=1,
        batch_size=64,
        progress=False,
    )
    assert suspects.shape == (32,) and torch.equal(
        suspects, similarity.topk(32).indices.sort().values
    )
    assert not torch.allclose(similarity, own)  # the over-fitted copy moved ...
    assert all(
        torch.equal(before[n], p) for n, p in model.state_dict().items()
    )  # ... the model did not


def test_cleanclip_fine_tuning_runs_and_keeps_the_model_usable(poisoned_toy, one_thread):
    data, _, _, models, _ = poisoned_toy
    model = mini_clip(TINY, seed=0)
    model.load_state_dict(models["poisoned"].state_dict())
    losses = cleanclip(
        model,
        data.images[:128],
        data.captions[:128],
        epochs=2,
        batch_size=64,
        lr=1e-3,
        progress=False,
    )
    assert len(losses) == 2 and all(torch.isfinite(torch.tensor(losses)))
    assert not model.training
