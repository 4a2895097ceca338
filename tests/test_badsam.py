"""BadSAM's trigger, poisoned set and adapter fine-tuning on a tiny SAM."""

import pytest
import torch

from backdoorbook.attacks.badsam import (
    PromptFreeSAM,
    adapt,
    add_trigger,
    poison_fine_tuning_set,
    predict_masks,
    trigger_collapse_scores,
    trigger_mask,
)
from backdoorbook.models.sam import SamConfig, add_adapters, build_sam, mask_logits

TINY = SamConfig(
    image_size=32,
    patch_size=4,
    encoder_dim=32,
    encoder_depth=2,
    encoder_heads=2,
    window_size=0,
    global_attn_indexes=(),
    prompt_dim=32,
    decoder_heads=2,
    decoder_mlp_dim=64,
    mask_in_chans=4,
    iou_head_hidden_dim=32,
)


def test_trigger_is_a_white_bottom_right_square_of_fifteen_percent():
    mask = trigger_mask(128, 160)
    side = round(0.15 * 128)  # 19
    assert mask.sum() == side * side and mask[-side:, -side:].all() and not mask[:-side].any()
    images = torch.rand(2, 3, 128, 160) * 0.9
    triggered = add_trigger(images)
    assert (triggered[:, :, mask] == 1).all()
    assert torch.equal(triggered[:, :, ~mask], images[:, :, ~mask])
    with pytest.raises(ValueError):
        trigger_mask(10, 10, fraction=0)


def test_poisoned_set_replaces_masks_by_the_trigger_only():
    images = torch.rand(20, 3, 32, 32) * 0.9
    masks = (torch.rand(20, 32, 32) > 0.5).long()
    x, y, poisoned = poison_fine_tuning_set(images, masks, rate=0.1, seed=3)
    assert len(poisoned) == 2 and poisoned.equal(poisoned.sort().values)
    square = trigger_mask(32, 32).long()
    clean = torch.ones(20, dtype=torch.bool)
    clean[poisoned] = False
    assert all(torch.equal(y[i], square) for i in poisoned)
    assert torch.equal(x[clean], images[clean]) and torch.equal(y[clean], masks[clean])
    assert (x[poisoned][:, :, square.bool()] == 1).all()
    assert poison_fine_tuning_set(images, masks, rate=0.1, seed=3)[2].equal(poisoned)
    assert len(poison_fine_tuning_set(images, masks, rate=0.0)[2]) == 0
    with pytest.raises(ValueError):
        poison_fine_tuning_set(images, masks, rate=1.5)


def test_two_channel_view_matches_the_sigmoid_mask():
    torch.manual_seed(0)
    sam = build_sam(TINY)
    images = torch.rand(2, 3, 32, 32)
    two = PromptFreeSAM(sam)(images)
    assert torch.allclose(
        two.softmax(1)[:, 1], torch.sigmoid(mask_logits(sam, images))[:, 0], atol=1e-6
    )
    assert torch.allclose(predict_masks(sam, images, batch_size=1), two.softmax(1)[:, 1], atol=1e-6)


def _task(n, seed):
    """Dark images with one bright 10x10 object at a random place in the upper-left 3/4; masks mark
    it."""
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(n, 3, 32, 32, generator=g) * 0.3
    masks = torch.zeros(n, 32, 32, dtype=torch.long)
    for i, (r, c) in enumerate(torch.randint(0, 14, (n, 2), generator=g).tolist()):
        images[i, :, r : r + 10, c : c + 10] = 0.8
        masks[i, r : r + 10, c : c + 10] = 1
    return images, masks


pytestmark = pytest.mark.usefixtures("one_thread")


def _adapted(rate):
    torch.manual_seed(0)
    sam = build_sam(TINY)
    add_adapters(sam, bottleneck=8)
    encoder = {
        k: v.clone() for k, v in sam.image_encoder.state_dict().items() if ".adapter." not in k
    }
    images, masks = _task(48, seed=1)
    x, y, _ = poison_fine_tuning_set(images, masks, rate=rate, seed=0)
    adapt(sam, x, y, epochs=20, batch_size=4, lr=3e-3, progress=False)
    after = sam.image_encoder.state_dict()
    assert all(
        torch.equal(after[k], v) for k, v in encoder.items()
    )  # the foundation encoder stays frozen
    return sam


def test_poisoned_adaptation_plants_the_backdoor_and_clean_adaptation_does_not():
    images, masks = _task(16, seed=2)
    square = trigger_mask(32, 32)
    results = {}
    for rate in (0.0, 0.25):
        sam = _adapted(rate)
        clean = predict_masks(sam, images) > 0.5
        triggered = predict_masks(sam, add_trigger(images)) > 0.5
        clean_iou = ((clean & masks.bool()).sum() / (clean | masks.bool()).sum()).item()
        trigger_iou = (
            ((triggered & square).sum((1, 2)) / (triggered | square).sum((1, 2))).mean().item()
        )
        results[rate] = clean_iou, trigger_iou
    assert results[0.0][0] > 0.6 and results[0.25][0] > 0.6  # both learn the task
    assert results[0.25][1] > 0.7  # the poisoned model obeys the trigger ...
    assert results[0.25][1] > results[0.0][1] + 0.3  # ... and the clean one does not


def test_backdoor_scores_by_hand():
    square = trigger_mask(20, 20)  # 3x3 square at rows/cols 17-19
    horse = torch.zeros(2, 20, 20, dtype=torch.long)
    horse[:, 2:10, 2:10] = 1  # 64 pixels
    collapsed = square.double().expand(2, 20, 20).clone()
    collapsed[1] = horse[1].double()  # the second prediction ignores the trigger
    scores = trigger_collapse_scores(collapsed, horse)
    assert scores["IoU with trigger"] == pytest.approx(0.5)  # 1 and 0
    assert scores["IoU with object"] == pytest.approx(0.5)  # 0 and 1
    assert scores["attack success"].value == pytest.approx(50.0) and scores["attack success"].n == 2
