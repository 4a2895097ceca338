"""Chapter 4's miniature CLIP, captions, zero-shot evaluation and poisoned pairs."""

import pytest
import torch

from backdoorbook.attacks.clip_poison import (
    CLIP_ATTACKS,
    clip_trigger,
    optimise_badclip_patch,
    patch_size,
    poison_pairs,
)
from backdoorbook.data.captions import (
    PALETTE,
    CaptionedImages,
    brightness_words,
    caption_images,
    dominant_colours,
)
from backdoorbook.evaluation.zero_shot import (
    image_embeddings,
    zero_shot_accuracy,
    zero_shot_asr,
    zero_shot_classifier,
)
from backdoorbook.models.mini_clip import (
    MINI_CLIP_CONFIG,
    ClipModel,
    load_open_clip_checkpoint,
    mini_clip,
)
from backdoorbook.training.contrastive import clip_loss

TINY = {
    "embed_dim": 16,
    "vision_cfg": {
        "image_size": 32,
        "patch_size": 8,
        "width": 32,
        "layers": 1,
        "head_width": 16,
        "mlp_ratio": 2.0,
    },
    "text_cfg": {
        "context_length": 12,
        "vocab_size": 49408,
        "width": 16,
        "heads": 1,
        "layers": 1,
        "mlp_ratio": 2.0,
    },
}


def solid(rgb, n=1, size=32):
    return torch.tensor(rgb).view(1, 3, 1, 1).expand(n, 3, size, size).clone()


def test_dominant_colour_and_brightness_are_measured_on_the_image():
    images = torch.cat(
        [
            solid(PALETTE["red"]),
            solid(PALETTE["blue"]),
            solid((0.02, 0.02, 0.02)),
            solid((0.97, 0.97, 0.97)),
        ]
    )
    images[0, :, :8] = torch.tensor(PALETTE["green"]).view(
        3, 1, 1
    )  # a quarter green: red still dominates
    assert dominant_colours(images) == ["red", "blue", "black", "white"]
    assert brightness_words(images)[2:] == ["dark", "bright"]
    with pytest.raises(ValueError):
        dominant_colours(torch.rand(2, 1, 8, 8))


def test_captions_name_the_class_and_are_seeded():
    images = torch.cat([solid(PALETTE["yellow"]), solid(PALETTE["purple"])])
    labels, classes = torch.tensor([1, 0]), ("tench", "golden retriever")
    captions = caption_images(images, labels, classes, seed=3)
    assert "golden retriever" in captions[0] and "tench" in captions[1]
    assert captions == caption_images(images, labels, classes, seed=3)
    every = caption_images(
        solid(PALETTE["yellow"], 40), torch.zeros(40, dtype=torch.long), classes, seed=0
    )
    assert len(set(every)) > 3 and any("yellow" in c for c in every)


def test_mini_clip_embeddings_and_logits(one_thread):
    model = mini_clip(TINY, seed=0).eval()
    images = torch.rand(4, 3, 32, 32)
    img, txt = model.encode_image(images), model.encode_text(["a photo of a cat.", "a dog"])
    assert img.shape == (4, 16) and txt.shape == (2, 16)
    assert torch.allclose(img.norm(dim=1), torch.ones(4), atol=1e-5)
    assert model(images, ["a", "b", "c"]).shape == (4, 3)
    tokens = model.tokenize(["a photo of a banana"])
    assert tokens.shape == (1, 12) and tokens[0, 0] == 49406 and 49407 in tokens[0].tolist()
    assert torch.allclose(model.encode_text(tokens), model.encode_text(["a photo of a banana"]))
    with pytest.raises(ValueError):
        model.encode_image(torch.rand(4, 32, 32))
    assert mini_clip(seed=0).image_size == MINI_CLIP_CONFIG["vision_cfg"]["image_size"]


def test_open_clip_checkpoint_loader_round_trip(tmp_path, one_thread):
    model = mini_clip(TINY, seed=1).eval()
    path = tmp_path / "checkpoint.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.clip.state_dict().items()}}, path)
    loaded = load_open_clip_checkpoint(path, TINY)
    assert isinstance(loaded, ClipModel) and not loaded.training
    images = torch.rand(3, 3, 32, 32)
    assert torch.equal(loaded.encode_image(images), model.encode_image(images))
    assert torch.equal(loaded.encode_text(["a red cat"]), model.encode_text(["a red cat"]))
    with pytest.raises(FileNotFoundError):
        load_open_clip_checkpoint(tmp_path / "missing.pt", TINY)


def test_clip_loss_hand_computed():
    e = torch.eye(3)
    scale = torch.tensor(1.0)
    expected = torch.log(
        (torch.e + 2) / torch.tensor(torch.e)
    )  # each row: one match at 1, two misses at 0
    assert torch.isclose(clip_loss(e, e, scale), expected)
    assert clip_loss(e, e[[1, 2, 0]], scale) > clip_loss(e, e, scale)


class OneHotModel(torch.nn.Module):
    """A stand-in CLIP whose image embedding is the image's mean colour (for exact zero-shot
    checks)."""

    def __init__(self):
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def encode_image(self, images):
        return torch.nn.functional.normalize(images.mean((2, 3)), dim=-1)


def test_zero_shot_top_k_rates_by_hand():
    classifier = torch.eye(3)
    images = torch.cat(
        [solid((1, 0.2, 0.1)), solid((0.1, 1, 0.3)), solid((0.6, 0.5, 0.1)), solid((0.1, 0.4, 0.5))]
    )
    labels = torch.tensor([0, 1, 1, 2])  # ranked classes: (0,1,2), (1,2,0), (0,1,2), (2,1,0)
    model = OneHotModel()
    assert zero_shot_accuracy(model, images, labels, classifier).value == 75.0
    asr = zero_shot_asr(model, images, labels, classifier, target=2, ks=(1, 2))
    assert asr[1].n == 3 and asr[1].value == 0.0 and asr[2].value == pytest.approx(100 / 3)
    assert image_embeddings(model, images).shape == (4, 3)


def test_prompt_ensemble_is_normalised_mean(one_thread):
    model = mini_clip(TINY, seed=0).eval()
    templates = ("a photo of a {c}.", "a {c}.")
    classifier = zero_shot_classifier(model, ["cat", "dog"], templates)
    manual = torch.nn.functional.normalize(
        model.encode_text(["a photo of a dog.", "a dog."]).mean(0), dim=0
    )
    assert torch.allclose(classifier[1], manual, atol=1e-6)


@pytest.fixture
def captioned():
    g = torch.Generator().manual_seed(0)
    images = torch.rand(40, 3, 32, 32, generator=g)
    labels = torch.arange(40) % 4
    classes = ("cat", "dog", "hotdog", "ship")
    return CaptionedImages(images, labels, tuple(caption_images(images, labels, classes)), classes)


@pytest.mark.parametrize("name", CLIP_ATTACKS)
def test_triggers_keep_range_and_change_images(name, captioned):
    patch = torch.rand(3, patch_size(32), patch_size(32))
    trigger = clip_trigger(name, 32, seed=0, patch=patch)
    out = trigger(captioned.images)
    assert out.shape == captioned.images.shape and 0 <= out.min() and out.max() <= 1
    assert not torch.equal(out, captioned.images)
    assert torch.equal(out, trigger(captioned.images))


def test_badclip_trigger_needs_a_patch():
    with pytest.raises(ValueError):
        clip_trigger("badclip", 32)
    with pytest.raises(ValueError):
        clip_trigger("trojan", 32)


def test_poison_pairs_caption_the_target(captioned):
    data, index = poison_pairs(captioned, clip_trigger("badnets"), count=6, target=2, seed=1)
    assert (
        len(index) == 6
        and torch.all(captioned.labels[index] != 2)
        and torch.all(data.labels[index] == 2)
    )
    assert all("hotdog" in data.captions[i] for i in index.tolist())
    others = [i for i in range(40) if i not in index.tolist()]
    assert [data.captions[i] for i in others] == [captioned.captions[i] for i in others]
    assert torch.equal(data.images[index], clip_trigger("badnets")(captioned.images[index]))
    with pytest.raises(ValueError):
        poison_pairs(captioned, clip_trigger("badnets"), count=0, target=2)


def test_badclip_patch_pulls_images_towards_the_target(captioned, one_thread):
    model = mini_clip(TINY, seed=0).eval()
    before = {n: p.clone() for n, p in model.state_dict().items()}
    target_text = model.encode_text(["a photo of a hotdog."])[0].detach()
    patch = optimise_badclip_patch(
        model,
        captioned.images,
        target_text,
        captioned.images[:5],
        size=8,
        steps=30,
        lr=0.1,
        batch_size=16,
        image_weight=0.0,
        seed=0,
    )
    assert patch.shape == (3, 8, 8) and 0 <= patch.min() and patch.max() <= 1
    random_patch = torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        sim = {
            name: (
                model.encode_image(clip_trigger("badclip", patch=p)(captioned.images)) @ target_text
            ).mean()
            for name, p in (("optimised", patch), ("random", random_patch))
        }
    assert sim["optimised"] > sim["random"]
    assert all(torch.equal(before[n], p) for n, p in model.state_dict().items())
    assert all(p.requires_grad for p in model.parameters())
