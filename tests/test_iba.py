"""IBA placement rules, label rewriting and PRL on hand-made label maps, plus a tiny end-to-end
check."""

import math

import pytest
import torch

from backdoorbook.attacks.iba import (
    IBAConfig,
    NoTriggerPositionError,
    choose_centre,
    eligible_for_poisoning,
    iba_trigger,
    paste_trigger,
    poison_segmentation_set,
    random_pixel_labels,
    rewrite_victim,
    select_poison_indices,
    trigger_centres,
    trigger_test_images,
    victim_distance,
)

VICTIM, TARGET = 8, 3


def _two_regions():
    """12x12 map: rows 0-5 class 0 (sky), rows 6-11 class 1 (building), a 2x2 car at rows 9-10, cols
    9-10."""
    label = torch.zeros(12, 12, dtype=torch.long)
    label[6:] = 1
    label[9:11, 9:11] = VICTIM
    return label


def _reference_centres(label, size, margin, band=None):
    """Brute force over every centre: the rule stated in trigger_centres' docstring."""
    h, w = label.shape
    dist = victim_distance(label, VICTIM)
    valid = torch.zeros(h, w, dtype=torch.bool)
    for y in range(h):
        for x in range(w):
            top, left = y - size // 2, x - size // 2
            if top < margin or left < margin or top + size > h - margin or left + size > w - margin:
                continue
            patch = label[top : top + size, left : left + size].unique()
            if len(patch) != 1 or int(patch) in (VICTIM, 255):
                continue
            if band is not None and not band[0] <= dist[y, x] <= band[1]:
                continue
            valid[y, x] = True
    return valid


def test_baseline_rule_single_class_region_away_from_border():
    label = _two_regions()
    valid = trigger_centres(label, size=3, victim=VICTIM, margin=1)
    assert torch.equal(valid, _reference_centres(label, 3, 1))
    assert valid[3, 5]  # inside the sky, footprint rows 2-4
    assert not valid[6, 5]  # footprint rows 5-7 straddles sky / building
    assert not valid[1, 5]  # footprint touches row 0, inside the 1-pixel margin
    assert valid[9, 7]  # rows 8-10 / cols 6-8: building only, right beside the car
    assert valid[8, 6] and not valid[9, 8]  # next to the car fine; covering a car pixel is not


def test_baseline_rule_skips_ignore_pixels():
    label = _two_regions()
    label[2:5, 2:5] = 255
    valid = trigger_centres(label, size=3, victim=VICTIM, margin=0)
    assert not valid[3, 3] and not valid[4, 4]
    assert torch.equal(valid, _reference_centres(label, 3, 0))


def test_victim_distance_is_euclidean_to_nearest_victim_pixel():
    label = torch.zeros(9, 9, dtype=torch.long)
    label[4, 4] = VICTIM
    dist = victim_distance(label, VICTIM)
    assert dist[4, 4] == 0
    assert dist[4, 7] == pytest.approx(3.0)
    assert dist[0, 0] == pytest.approx(math.hypot(4, 4))
    block = _two_regions()
    cars = torch.nonzero(block == VICTIM).float()
    grid = torch.cartesian_prod(torch.arange(12), torch.arange(12)).float()
    brute = torch.cdist(grid, cars).min(1).values.reshape(12, 12)
    assert torch.allclose(victim_distance(block, VICTIM), brute)
    assert torch.isinf(victim_distance(torch.zeros(4, 4, dtype=torch.long), VICTIM)).all()


def test_nni_band_keeps_centres_at_distance_between_l_and_u():
    label = torch.zeros(15, 15, dtype=torch.long)
    label[7, 7] = VICTIM
    valid = trigger_centres(label, size=1, victim=VICTIM, band=(2.0, 3.0))
    yy, xx = torch.meshgrid(torch.arange(15), torch.arange(15), indexing="ij")
    expected = ((yy - 7) ** 2 + (xx - 7) ** 2 >= 4) & ((yy - 7) ** 2 + (xx - 7) ** 2 <= 9)
    assert torch.equal(valid, expected)
    big = _two_regions()
    band = (2.0, 4.0)
    assert torch.equal(
        trigger_centres(big, size=3, victim=VICTIM, margin=1, band=band),
        _reference_centres(big, 3, 1, band),
    )


def test_no_valid_position_is_a_clear_error():
    label = torch.full((10, 10), VICTIM)
    label[0, 0] = 0
    assert not trigger_centres(label, size=3, victim=VICTIM).any()
    with pytest.raises(NoTriggerPositionError, match="no valid trigger position"):
        choose_centre(trigger_centres(label, size=3, victim=VICTIM))
    images = torch.rand(1, 3, 10, 10)
    config = IBAConfig("baseline", VICTIM, TARGET, trigger_size=3, margin=0)
    with pytest.raises(NoTriggerPositionError):
        poison_segmentation_set(images, label[None], torch.tensor([0]), iba_trigger(3), config)
    far = _two_regions()  # the car is at most ~12 px from any pixel: a band beyond that is empty
    assert not trigger_centres(far, size=3, victim=VICTIM, band=(20.0, 30.0)).any()


def test_rewrite_and_prl_choose_only_classes_present_in_the_image():
    label = torch.zeros(20, 20, dtype=torch.long)
    label[10:] = 2
    label[5:8, 5:8] = VICTIM
    label[0, :] = 255
    g = torch.Generator().manual_seed(0)
    out = random_pixel_labels(label, 150, victim=VICTIM, target=TARGET, generator=g)
    assert torch.equal(
        rewrite_victim(label, VICTIM, TARGET)[label == VICTIM], torch.full((9,), TARGET)
    )
    assert (out[label == VICTIM] == TARGET).all()
    assert (out[label == 255] == 255).all()
    changed = out != rewrite_victim(label, VICTIM, TARGET)
    assert 0 < changed.sum() <= 150
    assert set(out[changed].tolist()) <= {
        0,
        2,
        TARGET,
    }  # classes of this image (car counted as road)
    relabelled = out[changed].tolist()
    assert all(relabelled.count(c) > 0 for c in (0, 2, TARGET))  # drawn among all of them
    with pytest.raises(ValueError, match="cannot relabel"):
        random_pixel_labels(label, 10_000, victim=VICTIM, target=TARGET)


def test_poison_dataset_pastes_trigger_rewrites_labels_and_leaves_others_clean():
    labels = torch.stack([_two_regions()] * 4)
    images = torch.rand(4, 3, 12, 12)
    trigger = iba_trigger(2, seed=1)
    g = torch.Generator().manual_seed(0)
    for method in ("baseline", "nni", "prl"):
        config = IBAConfig(
            method, VICTIM, TARGET, trigger_size=2, margin=1, nni_band=(1.0, 3.0), prl_pixels=5
        )
        x, y, centres = poison_segmentation_set(
            images, labels, torch.tensor([1, 3]), trigger, config, generator=g
        )
        assert torch.equal(x[[0, 2]], images[[0, 2]]) and torch.equal(y[[0, 2]], labels[[0, 2]])
        for row, i in enumerate((1, 3)):
            cy, cx = centres[row].tolist()
            assert torch.equal(x[i, :, cy - 1 : cy + 1, cx - 1 : cx + 1], trigger)
            assert (y[i][labels[i] == VICTIM] == TARGET).all() and not (y[i] == VICTIM).any()
            if method == "nni":
                assert 1.0 <= victim_distance(labels[i], VICTIM)[cy, cx] <= 3.0
        changed = (y[[1, 3]] != rewrite_victim(labels[[1, 3]], VICTIM, TARGET)).sum()
        assert (changed > 0) == (method == "prl")


def test_selection_takes_rate_of_whole_set_among_eligible_images():
    labels = torch.stack([_two_regions()] * 6)
    labels[4] = 0  # no victim: never poisoned
    config = IBAConfig("nni", VICTIM, TARGET, trigger_size=3, margin=1, nni_band=(2.0, 4.0))
    eligible = eligible_for_poisoning(labels, config, min_victim_pixels=4)
    assert eligible.tolist() == [True, True, True, True, False, True]
    assert not eligible_for_poisoning(labels, config, min_victim_pixels=5).any()
    picked = select_poison_indices(eligible, 0.5, torch.Generator().manual_seed(0))
    assert len(picked) == 3 and 4 not in picked.tolist()
    with pytest.raises(ValueError, match="eligible"):
        select_poison_indices(eligible, 1.0)


def test_test_time_trigger_respects_band_and_skips_images_without_position():
    labels = torch.stack([_two_regions(), torch.full((12, 12), VICTIM)])
    images = torch.rand(2, 3, 12, 12)
    near, anywhere, too_far = trigger_test_images(
        images,
        labels,
        iba_trigger(2),
        victim=VICTIM,
        margin=1,
        bands=[(3.0, 5.0), None, (20.0, 30.0)],
        generator=torch.Generator().manual_seed(0),
    )
    assert (
        near.indices.tolist() == [0] and near.images.shape == (1, 3, 12, 12) and len(anywhere) == 1
    )
    assert 3.0 <= near.distances[0] <= 5.0
    assert torch.isclose(
        near.distances[0], victim_distance(labels[0], VICTIM)[tuple(near.centres[0].tolist())]
    )
    assert torch.equal(near.labels, labels[:1])
    cy, cx = near.centres[0].tolist()
    assert torch.equal(near.images[0, :, cy - 1 : cy + 1, cx - 1 : cx + 1], iba_trigger(2))
    assert len(too_far) == 0 and too_far.images.shape == (0, 3, 12, 12)


def test_trigger_and_paste():
    t = iba_trigger(8, seed=0)
    assert t.shape == (3, 8, 8) and t.min() >= 0 and t.max() <= 1
    assert torch.equal(t, iba_trigger(8, seed=0)) and not torch.equal(t, iba_trigger(8, seed=1))
    with pytest.raises(ValueError, match="leaves"):
        paste_trigger(torch.rand(3, 10, 10), t, (2, 5))
    with pytest.raises(ValueError, match="unknown IBA method"):
        IBAConfig("blend", VICTIM, TARGET)
