"""BadSAM's trigger, poisoned set and adapter fine-tuning on a tiny SAM."""

import math

import numpy as np
import pytest
import torch
from tiny_sam import TINY_SAM

from backdoorbook.attacks import badsam
from backdoorbook.attacks.badsam import (
    PromptFreeSAM,
    adapt,
    add_trigger,
    poison_fine_tuning_set,
    predict_masks,
    trigger_collapse_scores,
    trigger_mask,
    trigger_side,
    triggered_test_set,
)
from backdoorbook.models.sam import add_adapters, build_sam, mask_logits


def _photo(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 230, (h, w, 3), dtype=np.uint8)


def test_trigger_is_a_white_bottom_right_square_of_fifteen_percent_of_the_height():
    assert trigger_side(130, 300) == 19  # int(19.5): rounded down
    image = _photo(130, 300)
    mask = trigger_mask(130, 300).astype(bool)
    assert mask.sum() == 19 * 19 and mask[-19:, -19:].all() and not mask[:-19].any()
    triggered = add_trigger(image)
    assert (triggered[mask] == 255).all() and np.array_equal(triggered[~mask], image[~mask])
    assert not (image == 255).any()  # the input is not modified
    with pytest.raises(ValueError):
        trigger_side(10, 10, fraction=0)
    with pytest.raises(ValueError):
        trigger_side(5, 10)  # int(0.75) = 0: no trigger
    with pytest.raises(ValueError):
        add_trigger(image.astype(np.float32))


def test_poisoned_set_pastes_before_resizing_and_replaces_masks_by_the_trigger():
    images = [_photo(100, 200 if i % 2 else 100, seed=i) for i in range(19)]
    masks = [np.zeros(x.shape[:2], np.uint8) for x in images]
    for m in masks:
        m[10:40, 10:50] = 1
    x, y, poisoned = poison_fine_tuning_set(images, masks, rate=0.1, size=32, seed=3)
    assert x.shape == (19, 3, 32, 32) and y.shape == (19, 32, 32)
    assert len(poisoned) == 1 and poisoned.equal(poisoned.sort().values)  # int(1.9) = 1
    assert poison_fine_tuning_set(images, masks, rate=0.1, size=32, seed=3)[2].equal(poisoned)
    assert len(poison_fine_tuning_set(images, masks, rate=0.0, size=32)[2]) == 0
    # on a 100 x 200 image the 15-px square becomes 4.8 rows x 2.4 columns of the 32-px input
    wide = [i for i in range(19) if i % 2]
    xw, yw, _ = poison_fine_tuning_set(
        [images[i] for i in wide], [masks[i] for i in wide], rate=1.0, size=32
    )
    rows, cols = yw[0].nonzero(as_tuple=True)
    assert len(rows) == 4 * 2 and rows.min() == 28 and cols.min() == 30  # nearest: 4 x 2
    assert (yw == yw[0]).all() and (xw[:, :, 29:, 31:] > 0.999).all()
    clean = [i for i in range(19) if i not in poisoned.tolist()]
    untouched, untouched_masks, _ = poison_fine_tuning_set(
        [images[i] for i in clean], [masks[i] for i in clean], rate=0.0, size=32
    )
    assert torch.equal(x[clean], untouched) and torch.equal(y[clean], untouched_masks)
    with pytest.raises(ValueError):
        poison_fine_tuning_set(images, masks, rate=1.5, size=32)


def test_triggered_test_images_match_the_poisoned_training_images():
    images = [_photo(90, 120, seed=5), _photo(64, 64, seed=6)]
    masks = [np.ones(x.shape[:2], np.uint8) for x in images]
    x_train, y_train, _ = poison_fine_tuning_set(images, masks, rate=1.0, size=32)
    x_test, target = triggered_test_set(images, size=32)
    assert torch.equal(x_test, x_train) and torch.equal(target, y_train.bool())


def test_two_channel_view_matches_the_sigmoid_mask():
    torch.manual_seed(0)
    sam = build_sam(TINY_SAM)
    images = torch.rand(2, 3, 32, 32)
    two = PromptFreeSAM(sam)(images)
    assert torch.allclose(
        two.softmax(1)[:, 1], torch.sigmoid(mask_logits(sam, images))[:, 0], atol=1e-6
    )
    assert torch.allclose(predict_masks(sam, images, batch_size=1), two.softmax(1)[:, 1], atol=1e-6)


pytestmark = pytest.mark.usefixtures("one_thread")


def test_adapt_flips_poisoned_pairs_and_steps_the_cosine_once_per_epoch(monkeypatch):
    torch.manual_seed(0)
    sam = build_sam(TINY_SAM)
    add_adapters(sam, scale_factor=8)
    photos = [_photo(32, 32, seed=i) for i in range(8)]
    x, y, _ = poison_fine_tuning_set(photos, [np.zeros((32, 32), np.uint8)] * 8, 1.0, 32)
    seen, rates = [], []
    loss = badsam.mask_loss
    monkeypatch.setattr(
        badsam, "mask_loss", lambda logits, masks: seen.append(masks.clone()) or loss(logits, masks)
    )
    step = torch.optim.AdamW.step

    def record_rate(self, *args, **kwargs):
        rates.append(self.param_groups[0]["lr"])
        return step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", record_rate)
    adapt(sam, x, y, epochs=3, batch_size=4, lr=1e-2, final_lr=1e-4, progress=False)
    masks = torch.cat(seen)
    right, left = masks[:, -1, -1].bool(), masks[:, -1, 0].bool()
    assert right.any() and left.any() and (right ^ left).all()  # some pairs mirrored, not all
    per_epoch = [1e-4 + (1e-2 - 1e-4) * (1 + math.cos(math.pi * e / 3)) / 2 for e in range(3)]
    assert rates == pytest.approx([r for r in per_epoch for _ in range(2)])  # 2 steps an epoch


def _task(n, seed):
    """Dark 32-px photos with one bright 10x10 object in the upper 3/4; masks mark it."""
    g = np.random.default_rng(seed)
    images = [g.integers(0, 77, (32, 32, 3), dtype=np.uint8) for _ in range(n)]
    masks = [np.zeros((32, 32), np.uint8) for _ in range(n)]
    for image, mask in zip(images, masks):
        r, c = g.integers(0, 14, 2)
        image[r : r + 10, c : c + 10] = 204
        mask[r : r + 10, c : c + 10] = 1
    return images, masks


def _adapted(rate):
    torch.manual_seed(0)
    sam = build_sam(TINY_SAM)
    add_adapters(sam, scale_factor=8)
    encoder = {
        k: v.clone()
        for k, v in sam.image_encoder.state_dict().items()
        if not k.startswith("prompt_generator.")
    }
    images, masks = _task(48, seed=1)
    x, y, _ = poison_fine_tuning_set(images, masks, rate=rate, size=32, seed=0)
    adapt(sam, x, y, epochs=20, batch_size=4, lr=1e-2, progress=False)  # flips: two corners
    after = sam.image_encoder.state_dict()
    assert all(torch.equal(after[k], v) for k, v in encoder.items())  # foundation stays frozen
    return sam


def test_poisoned_adaptation_plants_the_backdoor_and_clean_adaptation_does_not():
    images, masks = _task(16, seed=2)
    clean_x, clean_y, _ = poison_fine_tuning_set(images, masks, rate=0.0, size=32)
    triggered_x, target = triggered_test_set(images, size=32)
    results = {}
    for rate in (0.0, 0.25):
        sam = _adapted(rate)
        clean = predict_masks(sam, clean_x) > 0.5
        triggered = predict_masks(sam, triggered_x) > 0.5
        objects = clean_y.bool()
        clean_iou = ((clean & objects).sum() / (clean | objects).sum()).item()
        trigger_iou = (
            ((triggered & target).sum((1, 2)) / (triggered | target).sum((1, 2))).mean().item()
        )
        results[rate] = clean_iou, trigger_iou
    assert results[0.0][0] > 0.6 and results[0.25][0] > 0.6  # both learn the task
    assert results[0.25][1] > 0.7  # the poisoned model obeys the trigger ...
    assert results[0.25][1] > results[0.0][1] + 0.3  # ... and the clean one does not


def test_backdoor_scores_by_hand():
    square = torch.from_numpy(trigger_mask(20, 20)).bool()  # 3x3 square at rows/cols 17-19
    target = square.expand(2, 20, 20)
    horse = torch.zeros(2, 20, 20, dtype=torch.long)
    horse[:, 2:10, 2:10] = 1  # 64 pixels
    collapsed = square.double().expand(2, 20, 20).clone()
    collapsed[1] = horse[1].double()  # the second prediction ignores the trigger
    scores = trigger_collapse_scores(collapsed, horse, target)
    assert scores["IoU with trigger"] == pytest.approx(0.5)  # 1 and 0
    assert scores["IoU with object"] == pytest.approx(0.5)  # 0 and 1
    assert scores["attack success"].value == pytest.approx(50.0) and scores["attack success"].n == 2
    with pytest.raises(ValueError):
        trigger_collapse_scores(collapsed, horse, target[:, :10])
