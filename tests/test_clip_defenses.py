"""Chapter 4's defenses (CleanCLIP, TA-Cleaner, UBT) and a tiny end-to-end poisoning check."""

import random
from functools import partial

import pytest
import torch
from test_clip import TINY

from backdoorbook.attacks import triggers
from backdoorbook.attacks.clip_poison import poison_pairs
from backdoorbook.data.captions import CaptionedImages, caption_images
from backdoorbook.defenses.cleanclip import (
    STOP_WORDS,
    CleanCLIPLoss,
    autoaugment_images,
    cleanclip,
    eda,
    eda_clean,
    eda_views,
    inmodal_loss,
    wordnet_synonyms,
)
from backdoorbook.defenses.ta_cleaner import TACleanerLoss, caption_subject, sub_captions
from backdoorbook.defenses.ubt import (
    UnlearnLoss,
    localise_tokens,
    pair_similarity,
    suspicious_pairs,
)
from backdoorbook.evaluation.zero_shot import zero_shot_asr, zero_shot_classifier
from backdoorbook.models.mini_clip import mini_clip
from backdoorbook.training.contrastive import clip_loss, clip_objective, train_contrastive

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


#: A fixed synonym table for exact EDA checks (WordNet's own synonyms are tested separately).
TABLE = {"photo": ("picture", "snapshot"), "red": ("crimson",), "cat": ("kitty", "feline")}


def _classify(view: str, words: list[str]) -> str:
    """Which EDA operation can have turned ``words`` into ``view`` (with :data:`TABLE`)."""
    new = view.split()
    if (
        len(new) == len(words)
        and all(a == b or a in TABLE.get(b, ()) for a, b in zip(new, words))
        and new != words
    ):
        return "synonym"
    if sorted(new) == sorted(words) and new != words:
        return "swap"
    if len(new) == len(words) + 1:
        for i in range(len(new)):
            rest = new[:i] + new[i + 1 :]
            if rest == words and new[i] in {s[0] for s in TABLE.values()} and i < len(words):
                return "insert"
    it = iter(words)
    if len(new) < len(words) and all(w in it for w in new):
        return "delete"
    return "unchanged" if new == words else "other"


def test_eda_applies_one_of_its_four_operations_to_a_cleaned_caption():
    caption = "A bright photo of a red cat, close-up."
    words = eda_clean(caption).split()
    assert words == ["a", "bright", "photo", "of", "a", "red", "cat", "close", "up"]
    synonyms = lambda w: TABLE.get(w, ())  # noqa: E731
    views = [eda(caption, random.Random(s), synonyms=synonyms) for s in range(200)]
    assert views == [eda(caption, random.Random(s), synonyms=synonyms) for s in range(200)]
    kinds = [_classify(v, words) for v in views]
    assert "other" not in kinds and {"synonym", "swap", "insert", "delete"} <= set(kinds)
    # n = max(1, int(0.1 * 9)) = 1: one synonym replaced, one word inserted, one swap
    for view, kind in zip(views, kinds):
        diff = sum(a != b for a, b in zip(view.split(), words))
        assert kind != "synonym" or diff == 1
        assert kind != "swap" or diff == 2
    assert all(v == v.lower() and "," not in v and "." not in v for v in views)
    assert eda("...", random.Random(0)) == "..."
    with pytest.raises(ValueError):
        eda(caption, random.Random(0), alpha=0)


def test_eda_synonym_replacement_skips_stop_words_and_replaces_every_occurrence():
    table = {"a": ("one",), "cat": ("kitty",), "of": ("from",)}
    synonyms = lambda w: table.get(w, ())  # noqa: E731
    caption = "a cat of a cat"
    for seed in range(100):
        view = eda(caption, random.Random(seed), synonyms=synonyms)
        if len(view.split()) == 5 and "kitty" in view:
            assert view == "a kitty of a kitty"  # "a" and "of" are stop words
    assert {"a", "of", "the", "with"} <= STOP_WORDS and "photo" not in STOP_WORDS


def test_wordnet_synonyms_of_caption_words():
    assert {"picture", "photograph", "exposure", "pic"} <= set(wordnet_synonyms("photo"))
    assert {"frankfurter", "hot dog", "wiener"} <= set(wordnet_synonyms("hotdog"))
    assert "gently" in wordnet_synonyms("softly") and "dark" not in wordnet_synonyms("dark")
    assert wordnet_synonyms("of") == () and wordnet_synonyms("retriever") == ()
    assert all(s == s.lower() and "_" not in s for s in wordnet_synonyms("red"))
    views = eda_views(["a bright photo of a red hotdog."] * 50, seed=0)
    assert views == eda_views(["a bright photo of a red hotdog."] * 50, seed=0)
    assert len(set(views)) > 5


def test_autoaugment_views_are_seeded_per_image_and_in_range():
    images = torch.rand(1, 3, 32, 32).expand(16, -1, -1, -1).contiguous()
    a = autoaugment_images(images, torch.Generator().manual_seed(1))
    assert a.shape == images.shape and 0 <= a.min() and a.max() <= 1
    assert torch.equal(a, autoaugment_images(images, torch.Generator().manual_seed(1)))
    assert len({tuple(v.flatten().tolist()) for v in a}) > 4  # one draw per image
    assert not torch.equal(a, autoaugment_images(images, torch.Generator().manual_seed(2)))
    with pytest.raises(ValueError):
        autoaugment_images(torch.rand(2, 1, 32, 32), torch.Generator())


def test_inmodal_loss_is_one_directional_by_hand():
    s = torch.tensor(2.0)
    img = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    img_view = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    txt = torch.tensor([[0.6, 0.8], [1.0, 0.0]])
    txt_view = torch.tensor([[0.0, 1.0], [0.8, 0.6]])

    def ce(row, i):  # -log softmax(row)[i]
        return -row[i] + torch.logsumexp(row, 0)

    # rows of s * I Ĩᵀ: [2, 1.2], [0, 1.6]; rows of s * T T̃ᵀ: [1.6, 1.92], [0, 1.6]
    image_term = (ce(torch.tensor([2.0, 1.2]), 0) + ce(torch.tensor([0.0, 1.6]), 1)) / 2
    text_term = (ce(torch.tensor([1.6, 1.92]), 0) + ce(torch.tensor([0.0, 1.6]), 1)) / 2
    expected = (image_term + text_term) / 2
    assert torch.isclose(inmodal_loss(img, img_view, txt, txt_view, s), expected)
    symmetric = (clip_loss(img, img_view, s) + clip_loss(txt, txt_view, s)) / 2
    assert not torch.isclose(symmetric, expected)  # the columns' cross-entropies are not added
    with pytest.raises(ValueError):
        inmodal_loss(img, img_view[:1], txt, txt_view, s)


def test_cleanclip_loss_adds_the_weighted_inmodal_term_with_fixed_caption_views(one_thread):
    data = toy_set(32)
    model = mini_clip(TINY, seed=0).eval()
    index = torch.arange(16)
    views = eda_views(data.captions, seed=4)
    objective = CleanCLIPLoss(model, data.images, data.captions, inmodal_weight=0.5, seed=4)
    assert objective.caption_views == views
    with torch.no_grad():
        first = objective(index, 0)
        scale, x = model.logit_scale(), data.images[index]
        img, txt = model.encode_image(x), model.encode_text(list(data.captions[:16]))
        img_view = model.encode_image(autoaugment_images(x, torch.Generator().manual_seed(4)))
        txt_view = model.encode_text(list(views[:16]))
        expected = clip_loss(img, txt, scale) + 0.5 * inmodal_loss(
            img, img_view, txt, txt_view, scale
        )
        assert torch.isclose(first, expected, rtol=1e-5)
        assert objective.caption_views == views  # the same views in every epoch
        plain = CleanCLIPLoss(model, data.images, data.captions, inmodal_weight=0.0)
        assert plain.caption_views is None
        assert torch.isclose(plain(index, 0), clip_loss(img, txt, scale), rtol=1e-5)


class LookupModel(torch.nn.Module):
    """A stand-in CLIP with fixed embeddings: images are their own embedding vectors, and each
    caption's embedding is looked up (token ids are row numbers)."""

    def __init__(self, captions: dict[str, torch.Tensor], scale: float = 10.0):
        super().__init__()
        self.names = list(captions)
        self.table = torch.nn.functional.normalize(torch.stack(list(captions.values())), dim=1)
        self.scale = torch.tensor(scale)

    def encode_image(self, images):
        return torch.nn.functional.normalize(images, dim=1)

    def encode_text(self, text):
        rows = text[:, 0] if isinstance(text, torch.Tensor) else [self.names.index(t) for t in text]
        return self.table[rows]

    def logit_scale(self):
        return self.scale


def test_ubt_unlearning_loss_by_hand():
    captions = {
        "a cat.": torch.tensor([1.0, 0.0, 0.0]),
        "a dog.": torch.tensor([0.0, 1.0, 0.0]),
        "hotdog": torch.tensor([0.0, 0.0, 1.0]),
        "red": torch.tensor([0.6, 0.0, 0.8]),
    }
    model = LookupModel(captions)
    clean_images = torch.tensor([[1.0, 0.2, 0.0], [0.1, 1.0, 0.0]])
    suspects = torch.tensor([[0.0, 0.6, 0.8], [0.0, -1.0, 0.0]])  # cos 0.8 and 0 with "hotdog"
    tokens = torch.tensor([[2], [3]])  # "hotdog" and "red"
    loss = UnlearnLoss(
        model,
        clean_images,
        ["a cat.", "a dog."],
        suspects,
        tokens,
        forget_weight=2.0,
        margin=0.1,
    )
    img = torch.nn.functional.normalize(clean_images, dim=1)
    retain = clip_loss(img, model.table[:2], model.scale)
    # cos(suspect 0, "hotdog") = 0.8, cos(suspect 1, "red") = 0: hinge at margin 0.1
    forget = (torch.relu(torch.tensor(0.8 - 0.1)) + torch.relu(torch.tensor(0.0 - 0.1))) / 2
    assert torch.isclose(loss(torch.arange(2), 0), retain + 2.0 * forget)
    assert torch.isclose(
        UnlearnLoss(model, clean_images, ["a cat.", "a dog."], suspects, tokens, margin=0.9)(
            torch.arange(2), 0
        ),
        retain,
    )


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
    """A tiny CLIP trained on clean toy pairs and one trained with 10 % pairs captioned 'hotdog'
    whose images carry a fixed bottom-right checkerboard (a trigger the toy learns in 15
    epochs)."""
    torch.set_num_threads(1)
    data = toy_set()
    trigger = partial(triggers.badnets, size=8)
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
