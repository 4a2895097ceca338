"""IBA placement rules, label rewriting and PRL on hand-made label maps, plus a tiny end-to-end
check."""

import pytest
import torch
import torch.nn.functional as F

from backdoorbook.attacks.iba import (
    IBAConfig,
    NoTriggerPositionError,
    choose_centre,
    eligible_for_poisoning,
    iba_trigger,
    images_in_every_set,
    in_band,
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
    for y in range(margin, h - margin):
        for x in range(margin, w - margin):
            top, left = y - size // 2, x - size // 2
            if top < 0 or left < 0 or top + size > h or left + size > w:
                continue
            patch = label[top : top + size, left : left + size].unique()
            if len(patch) != 1 or int(patch) in (VICTIM, 255):
                continue
            if band is not None and not band[0] < dist[y, x] <= band[1]:
                continue
            valid[y, x] = True
    return valid


def test_baseline_rule_single_class_region_centre_away_from_border():
    label = _two_regions()
    valid = trigger_centres(label, size=3, victim=VICTIM, margin=2)
    assert torch.equal(valid, _reference_centres(label, 3, 2))
    assert valid[3, 5]  # inside the sky, footprint rows 2-4
    assert not valid[6, 5]  # footprint rows 5-7 straddles sky / building
    assert valid[2, 5] and not valid[1, 5]  # the margin holds the centre, not the footprint
    assert valid[9, 7]  # rows 8-10 / cols 6-8: building only, right beside the car
    assert valid[8, 6] and not valid[9, 8]  # next to the car fine; covering a car pixel is not
    assert not valid[:, 10:].any()  # columns 10 and 11 lie within 2 px of the right border
    even = trigger_centres(label, size=4, victim=VICTIM)  # an even side: rows y - 2 to y + 1
    assert torch.equal(even, _reference_centres(label, 4, 0)) and even[2, 2] and not even[1, 2]


def test_baseline_rule_skips_ignore_pixels():
    label = _two_regions()
    label[2:5, 2:5] = 255
    valid = trigger_centres(label, size=3, victim=VICTIM, margin=0)
    assert not valid[3, 3] and not valid[4, 4]
    assert torch.equal(valid, _reference_centres(label, 3, 0))


def test_victim_distance_is_chebyshev_to_nearest_victim_pixel():
    label = torch.zeros(9, 9, dtype=torch.long)
    label[4, 4] = VICTIM
    dist = victim_distance(label, VICTIM)
    assert dist[4, 4] == 0 and dist[4, 7] == 3 and dist[0, 0] == 4 and dist[1, 6] == 3
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        block = torch.randint(0, 3, (13, 17), generator=g)
        block[torch.rand(13, 17, generator=g) < 0.03] = VICTIM
        block[0, 0] = VICTIM
        cars = torch.nonzero(block == VICTIM).float()
        grid = torch.cartesian_prod(torch.arange(13), torch.arange(17)).float()
        brute = torch.cdist(grid, cars, p=float("inf")).min(1).values.reshape(13, 17)
        assert torch.equal(victim_distance(block, VICTIM), brute)
    assert torch.isinf(victim_distance(torch.zeros(4, 4, dtype=torch.long), VICTIM)).all()


def _square_neighbourhood(is_victim, radius):
    """Pixels with a victim pixel in the (2r+1)-square around them: a max-pool dilation."""
    pooled = F.max_pool2d(is_victim.float()[None, None], 2 * radius + 1, 1, radius)
    return pooled[0, 0] > 0


@pytest.mark.parametrize("band", [(0, 3), (2, 5), (1, 7), (4, 6)])
def test_nni_band_is_the_ring_between_two_square_dilations_of_the_victim(band):
    g = torch.Generator().manual_seed(band[0] + 10 * band[1])
    label = torch.randint(0, 2, (20, 23), generator=g)
    label[torch.rand(20, 23, generator=g) < 0.02] = VICTIM
    label[5, 6] = VICTIM
    is_victim = label == VICTIM
    ring = ~_square_neighbourhood(is_victim, band[0]) & _square_neighbourhood(is_victim, band[1])
    assert torch.equal(in_band(victim_distance(label, VICTIM), band), ring)
    assert torch.equal(trigger_centres(label, size=1, victim=VICTIM, band=band), ring)


def test_nni_band_keeps_centres_with_l_below_distance_at_most_u():
    label = torch.zeros(15, 15, dtype=torch.long)
    label[7, 7] = VICTIM
    valid = trigger_centres(label, size=1, victim=VICTIM, band=(2.0, 3.0))
    yy, xx = torch.meshgrid(torch.arange(15), torch.arange(15), indexing="ij")
    assert torch.equal(valid, torch.maximum((yy - 7).abs(), (xx - 7).abs()) == 3)
    big = _two_regions()
    band = (2.0, 4.0)
    assert torch.equal(
        trigger_centres(big, size=3, victim=VICTIM, margin=1, band=band),
        _reference_centres(big, 3, 1, band),
    )
    with pytest.raises(ValueError, match="0 <= L < U"):
        in_band(victim_distance(big, VICTIM), (3.0, 3.0))


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
    far = _two_regions()  # every pixel is within 10 px of the car: a band beyond that is empty
    assert not trigger_centres(far, size=3, victim=VICTIM, band=(20.0, 30.0)).any()


def test_prl_draws_positions_among_all_pixels_and_classes_present_ignore_and_victim_too():
    label = torch.zeros(20, 20, dtype=torch.long)
    label[10:] = 2
    label[5:8, 5:8] = VICTIM
    label[0, :] = 255
    out = random_pixel_labels(label, 200, victim=VICTIM, seed=3)
    assert (out[label == VICTIM] == VICTIM).all()  # original victim pixels are restored
    changed = out != label
    assert 0 < changed.sum() <= 200
    assert set(out[changed].tolist()) == {0, 2, 255, VICTIM}  # drawn among all of them
    assert changed[label == 255].any()  # an ignored pixel can get a class
    assert torch.equal(out, random_pixel_labels(label, 200, victim=VICTIM, seed=3))
    assert torch.equal(random_pixel_labels(label, 0, victim=VICTIM), label)
    with pytest.raises(ValueError, match="cannot relabel"):
        random_pixel_labels(label, 401, victim=VICTIM)


def test_prl_reseeds_for_every_map_so_maps_of_one_size_share_their_positions():
    first = torch.zeros(16, 16, dtype=torch.long)
    first[:2, :2] = torch.tensor([[1, 2], [1, 2]])
    second = torch.full((16, 16), 4)  # classes 4 < 5 < 6 take the places of 0 < 1 < 2
    second[:2, :2] = torch.tensor([[5, 6], [5, 6]])
    rest = torch.ones(16, 16, dtype=torch.bool)
    rest[:2, :2] = False
    moved = [
        (random_pixel_labels(m, 60, victim=VICTIM, seed=seed) != m) & rest
        for seed in (0, 1)
        for m in (first, second)
    ]
    assert moved[0].sum() > 20 and torch.equal(moved[0], moved[1])
    assert not torch.equal(moved[0], moved[2])


def test_poison_dataset_pastes_trigger_rewrites_labels_and_prl_relabels_every_map():
    labels = torch.stack([_two_regions()] * 4)
    images = torch.rand(4, 3, 12, 12)
    trigger = iba_trigger(3, seed=1)
    g = torch.Generator().manual_seed(0)
    for method in ("baseline", "nni", "prl"):
        config = IBAConfig(
            method, VICTIM, TARGET, trigger_size=3, margin=1, nni_band=(1.0, 3.0), prl_pixels=40
        )
        x, y, centres = poison_segmentation_set(
            images, labels, torch.tensor([1, 3]), trigger, config, generator=g, prl_seed=5
        )
        assert torch.equal(x[[0, 2]], images[[0, 2]])
        for row, i in enumerate((1, 3)):
            cy, cx = centres[row].tolist()
            assert torch.equal(x[i, :, cy - 1 : cy + 2, cx - 1 : cx + 2], trigger)
            assert (y[i][labels[i] == VICTIM] == TARGET).all() and not (y[i] == VICTIM).any()
            if method == "nni":
                assert 1 < victim_distance(labels[i], VICTIM)[cy, cx] <= 3
        if method == "prl":  # every map relabelled, the same way (one size, one seed)
            relabelled = random_pixel_labels(labels[0], 40, victim=VICTIM, seed=5)
            assert not torch.equal(relabelled, labels[0])
            assert torch.equal(y[0], relabelled) and torch.equal(y[2], relabelled)
            assert torch.equal(y[1], rewrite_victim(relabelled, VICTIM, TARGET))
        else:
            assert torch.equal(y[[0, 2]], labels[[0, 2]])
            assert torch.equal(y[[1, 3]], rewrite_victim(labels[[1, 3]], VICTIM, TARGET))


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
        iba_trigger(3),
        victim=VICTIM,
        margin=1,
        bands=[(2.0, 4.0), None, (20.0, 30.0)],
        generator=torch.Generator().manual_seed(0),
    )
    assert (
        near.indices.tolist() == [0] and near.images.shape == (1, 3, 12, 12) and len(anywhere) == 1
    )
    assert 2.0 < near.distances[0] <= 4.0
    assert torch.equal(
        near.distances[0], victim_distance(labels[0], VICTIM)[tuple(near.centres[0].tolist())]
    )
    assert torch.equal(near.labels, labels[:1])
    cy, cx = near.centres[0].tolist()
    assert torch.equal(near.images[0, :, cy - 1 : cy + 2, cx - 1 : cx + 2], iba_trigger(3))
    assert len(too_far) == 0 and too_far.images.shape == (0, 3, 12, 12)


def test_trigger_and_paste():
    t = iba_trigger(7, seed=0)
    assert t.shape == (3, 7, 7) and t.min() >= 0 and t.max() <= 1
    assert torch.equal(t, iba_trigger(7, seed=0)) and not torch.equal(t, iba_trigger(7, seed=1))
    with pytest.raises(ValueError, match="leaves"):
        paste_trigger(torch.rand(3, 10, 10), t, (2, 5))
    with pytest.raises(ValueError, match="unknown IBA method"):
        IBAConfig("blend", VICTIM, TARGET)
    with pytest.raises(ValueError, match="0 <= L < U"):
        IBAConfig("nni", VICTIM, TARGET, nni_band=(4.0, 2.0))


def test_several_placements_per_image_and_the_images_every_band_shares():
    far_car = _two_regions()
    near_only = torch.zeros(12, 12, dtype=torch.long)
    near_only[:, 6:] = 1
    near_only[3:9, 3:9] = VICTIM  # a large car in the middle: no centre more than 3 px from it
    labels = torch.stack([far_car, near_only])
    images = torch.rand(2, 3, 12, 12)
    bands = [(0.0, 3.0), (3.0, 8.0)]
    near, far = trigger_test_images(
        images,
        labels,
        iba_trigger(3),
        victim=VICTIM,
        margin=1,
        bands=bands,
        generator=torch.Generator().manual_seed(0),
        placements=4,
    )
    assert near.indices.tolist() == [0] * 4 + [1] * 4 and far.indices.tolist() == [0] * 4
    assert all(in_band(s.distances, b).all() for s, b in zip([near, far], bands))
    assert len({tuple(c) for c in near.centres[:4].tolist()}) > 1  # independent draws
    common = images_in_every_set([near, far])
    assert common.tolist() == [0]
    kept = near.restrict(common)
    assert kept.indices.tolist() == [0] * 4 and torch.equal(kept.images, near.images[:4])
    assert torch.equal(kept.distances, near.distances[:4])
    with pytest.raises(ValueError, match="placement"):
        trigger_test_images(
            images, labels, iba_trigger(3), victim=VICTIM, bands=[None], placements=0
        )
