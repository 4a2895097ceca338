"""Chapter 4's miniature CLIP, captions, zero-shot evaluation and poisoned pairs."""

import json
import math
import random

import open_clip
import open_clip.factory
import pytest
import torch

from backdoorbook.attacks.clip_poison import (
    CLIP_ATTACKS,
    clip_trigger,
    noise_blend,
    noise_patch,
    optimise_badclip_patch,
    patch_size,
    poison_pairs,
    stamp_centre,
)
from backdoorbook.data.captions import (
    CAPTION_TEMPLATES,
    PALETTE,
    ZERO_SHOT_TEMPLATES,
    CaptionedImages,
    brightness_words,
    caption_images,
    dominant_colours,
)
from backdoorbook.defenses.ta_cleaner import sub_captions
from backdoorbook.evaluation.zero_shot import (
    image_embeddings,
    zero_shot_accuracy,
    zero_shot_asr,
    zero_shot_backdoor_scores,
    zero_shot_classifier,
    zero_shot_correct,
    zero_shot_outcomes,
    zero_shot_target_hits,
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


@pytest.fixture
def registered_tiny(tmp_path, monkeypatch):
    """TINY registered with open_clip under a model name (open_clip.add_model_config), for this
    test only."""
    monkeypatch.setattr(open_clip.factory, "_MODEL_CONFIG_PATHS", [])
    monkeypatch.setattr(open_clip.factory, "_MODEL_CONFIGS", {})
    config = tmp_path / "configs" / "BB-Tiny-Test.json"
    config.parent.mkdir()
    config.write_text(json.dumps(TINY))
    open_clip.add_model_config(config)
    assert "BB-Tiny-Test" in open_clip.list_models()
    return "BB-Tiny-Test"


def test_open_clip_checkpoint_loader_by_architecture_name(registered_tiny, tmp_path, one_thread):
    model = mini_clip(TINY, seed=2).eval()
    path = tmp_path / "tiny.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.clip.state_dict().items()}}, path)
    loaded = load_open_clip_checkpoint(path, registered_tiny)
    assert isinstance(loaded, ClipModel) and not loaded.training
    assert loaded.context_length == TINY["text_cfg"]["context_length"] and loaded.image_size == 32
    images = torch.rand(3, 3, 32, 32)
    assert torch.allclose(loaded.encode_image(images), model.encode_image(images), atol=1e-6)
    text = ["a photo of the red cat.", "a dog"]
    assert torch.allclose(loaded.encode_text(text), model.encode_text(text), atol=1e-6)
    assert torch.equal(loaded.tokenize(text), model.tokenize(text))
    other = mini_clip(TINY, seed=3).eval()  # the weights come from the file, not the init
    assert not torch.allclose(loaded.encode_image(images), other.encode_image(images))
    with pytest.raises(RuntimeError):
        load_open_clip_checkpoint(path, "BB-No-Such-Model")


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
    # the per-image outcomes behind those rates, in the images' order (non-target ones for ASR)
    assert zero_shot_correct(model, images, labels, classifier).tolist() == [1, 1, 0, 1]
    per_image = zero_shot_target_hits(model, images, labels, classifier, target=2, ks=(1, 2))
    assert per_image[1].tolist() == [0, 0, 0] and per_image[2].tolist() == [0, 1, 0]
    with pytest.raises(ValueError, match="labels"):
        zero_shot_correct(model, images, labels[:3], classifier)


def test_zero_shot_outcomes_match_the_rates(one_thread):
    model = mini_clip(TINY, seed=0).eval()
    images = torch.rand(12, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 1, 2] * 4)
    triggered = stamp_centre(images, torch.ones(3, 8, 8))
    classes = ["cat", "dog", "ship"]
    outcomes = zero_shot_outcomes(model, images, labels, triggered, classes, target=2)
    scores = zero_shot_backdoor_scores(model, images, labels, triggered, classes, target=2)
    assert outcomes["CA"].shape == (12,) and outcomes["ASR@1"].shape == (8,)
    assert outcomes["ASR@10"].all()  # ten classes of three always include the target
    classifier = zero_shot_classifier(model, classes)
    assert scores["CA"].value == zero_shot_accuracy(model, images, labels, classifier).value
    assert scores["ASR@1"].value == pytest.approx(100 * outcomes["ASR@1"].float().mean().item())
    assert scores["ASR@1"].n == 8


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
    first, twin = (clip_trigger(name, 32, seed=0, patch=patch) for _ in range(2))
    out = first(captioned.images)
    assert out.shape == captioned.images.shape and 0 <= out.min() and out.max() <= 1
    assert not torch.equal(out, captioned.images)
    assert torch.equal(out, twin(captioned.images))  # one seed, one sequence of images
    fresh = name in ("badnets", "blended")  # drawn afresh per image, call after call
    assert torch.equal(out, first(captioned.images)) != fresh


def test_noise_patch_is_a_clipped_mean_plus_normal_noise_square_at_a_random_place():
    images = torch.full((400, 3, 32, 32), 0.5)
    images[:, 1] = 0.2
    out = noise_patch(images, torch.Generator().manual_seed(0), size=8)
    changed = (out != images).any(1)  # [N, H, W]
    corners = []
    for mask in changed:
        rows, cols = torch.nonzero(mask, as_tuple=True)
        top, left = int(rows.min()), int(cols.min())
        assert int(rows.max()) - top < 8 and int(cols.max()) - left < 8
        corners.append((top, left))
    tops, lefts = zip(*corners)
    # the protocol's randint(0, 223 - size): top-left in [0, S - 1 - size], a spread of places
    assert min(tops) >= 0 and max(tops) <= 32 - 1 - 8 and len(set(corners)) > 100
    inside = torch.stack([o[:, t : t + 8, lf : lf + 8] for o, (t, lf) in zip(out, corners)])
    assert 0 <= inside.min() and inside.max() <= 1
    # N(mean, 1) clipped to [0, 1]: the share at 1 is P(Z > 1 - mean)
    for channel, mean in ((0, 0.5), (1, 0.2)):
        at_one = (inside[:, channel] == 1).float().mean().item()
        assert at_one == pytest.approx(0.5 * math.erfc((1 - mean) / math.sqrt(2)), abs=0.01)
    assert not torch.equal(inside[0], inside[1])
    with pytest.raises(ValueError):
        noise_patch(images, torch.Generator(), size=32)


def test_noise_blend_uses_fresh_uniform_noise_per_image():
    images = torch.full((64, 3, 32, 32), 0.5)
    out = noise_blend(images, torch.Generator().manual_seed(1), alpha=0.2)
    noise = (out - 0.8 * images) / 0.2
    assert -1e-6 <= noise.min() and noise.max() <= 1 + 1e-6
    assert noise.mean().item() == pytest.approx(0.5, abs=0.01)
    assert not torch.allclose(noise[0], noise[1])


def test_sig_and_wanet_follow_the_protocols_formulas(captioned):
    x = captioned.images[:4]
    j = torch.arange(32, dtype=torch.float32)
    sig = (x + (60 / 255) * torch.sin(2 * math.pi * j * 6 / 32)).clamp(0, 1)
    assert torch.allclose(clip_trigger("sig", 32)(x), sig, atol=1e-6)
    # WaNet with k = input height (BadCLIP's k = 224 at 224 px): the normalised random control
    # grid is the field itself, displacement s * noise / height with s = 1
    grid = torch.rand(1, 2, 32, 32, generator=torch.Generator().manual_seed(7)) * 2 - 1
    noise = (grid / grid.abs().mean()).permute(0, 2, 3, 1)
    line = torch.linspace(-1, 1, 32)
    rows, cols = torch.meshgrid(line, line, indexing="ij")
    identity = torch.stack((cols, rows), dim=2)[None]
    warped = torch.nn.functional.grid_sample(
        x, (identity + noise / 32).clamp(-1, 1).expand(4, -1, -1, -1), align_corners=True
    )
    assert torch.allclose(clip_trigger("wanet", 32, seed=7)(x), warped.clamp(0, 1), atol=1e-5)


def test_badclip_patch_sits_at_the_centre():
    for size, p, top in ((32, 8, 12), (224, 16, 104)):  # 224 px: BadCLIP's "middle" placement
        out = stamp_centre(torch.zeros(1, 3, size, size), torch.ones(3, p, p))
        rows, cols = torch.nonzero(out[0, 0], as_tuple=True)
        assert (int(rows.min()), int(rows.max()), int(cols.min())) == (top, top + p - 1, top)


def test_badclip_trigger_needs_a_patch():
    with pytest.raises(ValueError):
        clip_trigger("badclip", 32)
    with pytest.raises(ValueError):
        clip_trigger("trojan", 32)


def test_poison_pairs_caption_the_target(captioned):
    trigger = clip_trigger("sig")
    data, index = poison_pairs(captioned, trigger, count=6, target=2, seed=1)
    assert (
        len(index) == 6
        and torch.all(captioned.labels[index] != 2)
        and torch.all(data.labels[index] == 2)
    )
    assert all("hotdog" in data.captions[i] for i in index.tolist())
    others = [i for i in range(40) if i not in index.tolist()]
    assert [data.captions[i] for i in others] == [captioned.captions[i] for i in others]
    assert torch.equal(data.images[index], trigger(captioned.images[index]))
    natural = ("a hotdog on a plate.", "two hotdogs.")
    data, index = poison_pairs(captioned, trigger, count=6, target=2, seed=1, captions=natural)
    assert {data.captions[i] for i in index.tolist()} <= set(natural)
    with pytest.raises(ValueError):
        poison_pairs(captioned, trigger, count=0, target=2)


def test_zero_shot_prompts_are_held_out_from_training_and_defense_captions():
    lights = ("dark", "bright", "softly lit")
    training = {
        t.format(c="X", col=col, b=b) for t in CAPTION_TEMPLATES for col in PALETTE for b in lights
    }
    positive, _ = sub_captions("a dark picture of a red X.", ("X", "Y"), random.Random(0))
    prompts = {t.format(c="X") for t in ZERO_SHOT_TEMPLATES}
    assert len(prompts) == len(ZERO_SHOT_TEMPLATES) and not prompts & (training | {positive})
    vocabulary = {w.strip(".,") for c in training for w in c.split()}
    assert all(w.strip(".") in vocabulary for p in prompts for w in p.split())


def test_badclip_patch_pulls_images_towards_target_captions(captioned, one_thread):
    model = mini_clip(TINY, seed=0).eval()
    before = {n: p.clone() for n, p in model.state_dict().items()}
    target_captions = ["a photo of a hotdog.", "a red hotdog.", "a dark picture of a hotdog."]
    text = torch.nn.functional.normalize(model.encode_text(target_captions).mean(0), dim=0)
    patch = optimise_badclip_patch(
        model,
        captioned.images,
        target_captions,
        captioned.images[:5],
        size=8,
        steps=30,
        lr=0.05,
        batch_size=16,
        triplet_weight=0.0,
        aug_prob=0.5,
        seed=0,
    )
    assert patch.shape == (3, 8, 8) and 0 <= patch.min() and patch.max() <= 1
    random_patch = torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        sim = {
            name: (model.encode_image(clip_trigger("badclip", patch=p)(captioned.images)) @ text)
            .mean()
            .item()
            for name, p in (("optimised", patch), ("random", random_patch))
        }
    assert sim["optimised"] > sim["random"]
    assert all(torch.equal(before[n], p) for n, p in model.state_dict().items())
    assert all(p.requires_grad for p in model.parameters())


def test_badclip_triplet_term_favours_target_images_over_clean_copies(captioned, one_thread):
    model = mini_clip(TINY, seed=0).eval()
    targets = captioned.images[captioned.labels == 2]
    sources = captioned.images[captioned.labels != 2]
    positives, clean = image_embeddings(model, targets), image_embeddings(model, sources)
    gap = {}  # mean distance to target images minus mean distance to the clean images
    for weight in (0.0, 5.0):
        patch = optimise_badclip_patch(
            model,
            sources,
            ["a hotdog."],
            targets,
            steps=40,
            lr=0.05,
            batch_size=16,
            triplet_weight=weight,
            aug_prob=0.0,
            seed=1,
        )
        patched = image_embeddings(model, clip_trigger("badclip", patch=patch)(sources))
        gap[weight] = torch.cdist(patched, positives).mean() - torch.cdist(patched, clean).mean()
    assert gap[5.0] < gap[0.0] - 0.01
    with pytest.raises(ValueError):
        optimise_badclip_patch(model, sources, [], targets)
