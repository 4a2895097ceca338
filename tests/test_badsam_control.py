"""The BadSAM chapter's random-encoder control and the per-image outcomes its claims pair."""

from dataclasses import fields, replace

import numpy as np
import py_sod_metrics
import pytest
import torch
from shipped import shipped_record
from tiny_sam import TINY_SAM

from backdoorbook.artifacts import save_artifact
from backdoorbook.attacks.badsam import (
    collapse_per_image,
    encoder_fingerprint,
    predict_masks,
    random_encoder,
    trigger_collapse_scores,
    trigger_mask,
)
from backdoorbook.book.profiles import get_profile, recipe_of
from backdoorbook.data.tensor_views import resize_square
from backdoorbook.evaluation.foreground import (
    WEIGHTED_F_BETA2,
    evaluate_masks,
    per_image_scores,
)
from backdoorbook.models.sam import build_sam
from backdoorbook.recipes.badsam_adapted import adapt_from_foundation, adapted_model

pytestmark = pytest.mark.usefixtures("one_thread")


def _foundation(config=TINY_SAM, shift=0.5):
    """A stand-in for a pre-trained SAM: built under another seed and shifted off any init."""
    torch.manual_seed(7)
    return {k: v + shift for k, v in build_sam(config).state_dict().items()}


def test_random_encoder_redraws_the_encoder_only_seeded_and_leaves_the_global_rng_alone():
    foundation = _foundation()
    torch.manual_seed(123)
    before = torch.get_rng_state()
    control = random_encoder(foundation, TINY_SAM, seed=0)
    assert torch.equal(torch.get_rng_state(), before)
    torch.manual_seed(0)
    reference = build_sam(TINY_SAM).state_dict()  # the architecture's own initialisation, seed 0
    assert control.keys() == foundation.keys()
    encoder = [k for k in control if k.startswith("image_encoder.")]
    assert encoder and len(encoder) < len(control)
    for k, v in control.items():
        assert torch.equal(v, reference[k] if k in encoder else foundation[k]), k
    assert not any(torch.equal(control[k], foundation[k]) for k in encoder if "weight" in k)
    other = random_encoder(foundation, TINY_SAM, seed=1)
    assert not torch.equal(other["image_encoder.patch_embed.proj.weight"], control[encoder[-1]])
    assert not torch.equal(
        other["image_encoder.patch_embed.proj.weight"],
        control["image_encoder.patch_embed.proj.weight"],
    )
    with pytest.raises(ValueError, match="does not fit"):
        random_encoder(foundation, "mini", seed=0)


def test_encoder_fingerprint_tells_encoders_apart_and_ignores_the_rest():
    foundation = _foundation()
    control = random_encoder(foundation, TINY_SAM, seed=0)
    assert encoder_fingerprint(control) == encoder_fingerprint(
        random_encoder(foundation, TINY_SAM, 0)
    )
    assert encoder_fingerprint(control) != encoder_fingerprint(foundation)
    decoder_changed = {k: v + 1 if k.startswith("mask_decoder.") else v for k, v in control.items()}
    assert encoder_fingerprint(decoder_changed) == encoder_fingerprint(control)
    one_weight = dict(control)
    weight = control["image_encoder.neck.0.weight"].clone()
    weight.view(-1)[0] += 1e-6
    one_weight["image_encoder.neck.0.weight"] = weight
    assert encoder_fingerprint(one_weight) != encoder_fingerprint(control)
    with pytest.raises(ValueError, match="no image_encoder"):
        encoder_fingerprint({"mask_decoder.x": torch.zeros(2)})


def test_collapse_per_image_by_hand_and_its_means_are_the_scores():
    square = torch.from_numpy(trigger_mask(20, 20)).bool()  # 3x3 at rows/cols 17-19
    target = square.expand(3, 20, 20)
    horse = torch.zeros(3, 20, 20, dtype=torch.long)
    horse[:, 2:10, 2:10] = 1
    probs = torch.zeros(3, 20, 20, dtype=torch.float64)
    probs[0][square] = 0.9  # collapsed onto the square
    probs[1] = 0.8 * horse[1]  # segments the horse
    probs[2, 17:20, 14:20] = 0.7  # covers the square and as much again: IoU 0.5, a success
    outcome = collapse_per_image(probs, horse, target)
    assert outcome["IoU with trigger"].tolist() == pytest.approx([1.0, 0.0, 0.5])
    assert outcome["IoU with object"].tolist() == pytest.approx([0.0, 1.0, 0.0])
    assert outcome["attack success"].tolist() == [100.0, 0.0, 100.0]
    scores = trigger_collapse_scores(probs, horse, target)
    assert scores["IoU with trigger"] == pytest.approx(0.5)
    assert (
        scores["attack success"].value == pytest.approx(200 / 3) and scores["attack success"].n == 3
    )
    with pytest.raises(ValueError):
        collapse_per_image(probs, horse, target[:, :10])


def test_per_image_scores_average_to_the_packages_accumulated_results():
    g = torch.Generator().manual_seed(0)
    gts = torch.rand(5, 24, 24, generator=g) > 0.6
    preds = (0.6 * gts + 0.4 * torch.rand(5, 24, 24, generator=g)).double()
    ours = per_image_scores(preds, gts)
    assert all(v.shape == (5,) for v in ours.values())
    reference = {  # one accumulating metric per measure, as the authors' evaluation runs them
        "S-measure": py_sod_metrics.Smeasure(),
        "mean E-measure": py_sod_metrics.Emeasure(),
        "weighted F-measure": py_sod_metrics.WeightedFmeasure(beta=WEIGHTED_F_BETA2),
        "MAE": py_sod_metrics.MAE(),
    }
    for pred, gt in zip(preds.numpy(), gts.numpy()):
        for metric in reference.values():
            metric.step(pred=255.0 * pred, gt=255.0 * gt.astype(np.float64))
    results = {name: metric.get_results() for name, metric in reference.items()}
    assert ours["S-measure"].mean() == pytest.approx(results["S-measure"]["sm"])
    assert ours["mean E-measure"].mean() == pytest.approx(
        results["mean E-measure"]["em"]["curve"].mean()
    )
    assert ours["weighted F-measure"].mean() == pytest.approx(results["weighted F-measure"]["wfm"])
    assert ours["MAE"].mean() == pytest.approx(results["MAE"]["mae"])
    means = evaluate_masks(preds, gts)
    assert means["n"] == 5 and means["IoU"] == pytest.approx(ours["IoU"].mean())
    one = evaluate_masks(preds[2:3], gts[2:3])
    assert all(one[k] == pytest.approx(ours[k][2]) for k in ours)
    with pytest.raises(ValueError):
        per_image_scores(preds[0], gts[0])  # one map, not a batch


def test_the_control_ships_and_loads_under_its_own_name_on_its_rebuilt_encoder(tmp_path):
    cfg = replace(get_profile("01_badsam", "ci"), epochs=1, batch_size=2)
    control_cfg = replace(cfg, adapted_artifacts=cfg.random_encoder_artifacts)
    foundation = _foundation("mini", shift=0.01)
    control = random_encoder(foundation, cfg.sam_config, cfg.random_encoder_seed)
    g = np.random.default_rng(0)
    images = [g.integers(0, 256, (100, 150, 3), dtype=np.uint8) for _ in range(4)]
    masks = [np.zeros((100, 150), np.uint8) for _ in range(4)]
    for m in masks:
        m[30:90, 40:100] = 1
    torch.manual_seed(0)
    state, _ = adapt_from_foundation(control, cfg, images, masks, 0.5, progress=False)
    record = shipped_record(
        recipe=recipe_of(cfg), seed=0, encoder_sha256=encoder_fingerprint(control)
    )
    name = control_cfg.adapted_artifact(0.5)
    assert name == "badsam_mini_random_encoder_50pct"
    save_artifact(name, state, record, directory=tmp_path)
    loaded, info = adapted_model(control, control_cfg, 0.5, images, masks, directory=tmp_path)
    assert info["encoder_sha256"] == encoder_fingerprint(control)
    on_foundation, _ = adapted_model(
        foundation, control_cfg, 0.5, images, masks, directory=tmp_path
    )
    x = resize_square(images, masks, 128)[0]
    assert not torch.equal(predict_masks(loaded, x), predict_masks(on_foundation, x))
    trained = {k: v for k, v in loaded.state_dict().items() if k in state}
    assert all(torch.equal(trained[k], state[k]) for k in state)


def test_smoke_takes_the_paper_path_at_toy_sizes():
    paper, smoke = get_profile("01_badsam", "paper"), get_profile("01_badsam", "smoke")
    differing = {f.name for f in fields(paper) if getattr(paper, f.name) != getattr(smoke, f.name)}
    sizes = {"test_images", "epochs", "poison_rates", "scored_test_images", "overlay_images"}
    assert differing <= sizes | {"threads"} and not smoke.ship_adapted_models
    assert smoke.scored_test_images <= smoke.test_images and max(smoke.poison_rates) == 0.1
