"""Segmentation metrics (hand-computed and against torchmetrics), the small DeepLab, and an IBA
learning-direction check."""

import pytest
import torch
from torchmetrics.classification import MulticlassJaccardIndex

from backdoorbook.attacks.iba import (
    IBAConfig,
    iba_trigger,
    poison_segmentation_set,
    select_poison_indices,
)
from backdoorbook.evaluation.segmentation import (
    confusion_matrix,
    iou_counts,
    mean_iou,
    miou_from_counts,
    poisoned_benign_miou,
    predict_maps,
    segmentation_backdoor_scores,
    sum_by_image,
    victim_flip_rate,
    victim_flips,
)
from backdoorbook.models.segmentation import SmallDeepLab, small_deeplab
from backdoorbook.training.supervised import fit


def test_confusion_and_miou_by_hand():
    labels = torch.tensor([[0, 0, 1, 1, 255]])
    pred = torch.tensor([[0, 1, 1, 1, 0]])
    assert confusion_matrix(pred, labels, 3).tolist() == [[1, 1, 0], [0, 2, 0], [0, 0, 0]]
    # class 0: I = 1, U = 2; class 1: I = 2, U = 3; class 2 absent everywhere: IoU 0, averaged
    score = mean_iou(pred, labels, 3)
    assert score.value == pytest.approx(100 * (1 / 2 + 2 / 3) / 3) and score.n == 4
    assert mean_iou(labels.clamp(max=1), labels.clamp(max=1), 2).value == pytest.approx(100.0)
    with pytest.raises(ValueError, match="class ids"):
        mean_iou(torch.tensor([[5]]), torch.tensor([[0]]), 3)
    with pytest.raises(ValueError, match="zero labelled"):
        mean_iou(torch.tensor([[0]]), torch.tensor([[255]]), 3)


def test_pba_leaves_out_victim_pixels_and_asr_counts_victim_pixels():
    labels = torch.tensor([[0, 0, 2, 2, 2, 1]])
    pred = torch.tensor([[0, 0, 1, 1, 2, 1]])  # two of three victim (2) pixels flipped to target 1
    pba = poisoned_benign_miou(pred, labels, victim=2, num_classes=3)
    assert pba.value == pytest.approx(100.0) and pba.n == 3
    asr = victim_flip_rate(pred, labels, victim=2, target=1)
    assert asr.value == pytest.approx(200 / 3) and asr.n == 3
    # a victim prediction on a non-victim pixel lowers that pixel's class, never adds a victim term
    pred[0, 5] = 2
    assert poisoned_benign_miou(pred, labels, 2, 3).value == pytest.approx(100 * (1 + 0) / 2)
    # a non-victim class absent from the triggered images counts 0 out of K - 1
    assert poisoned_benign_miou(pred, labels, 2, 4).value == pytest.approx(100 * (1 + 0) / 3)
    with pytest.raises(ValueError, match="victim 3"):
        poisoned_benign_miou(pred, labels, 3, 3)
    with pytest.raises(ValueError, match="empty denominator"):
        victim_flip_rate(pred, torch.zeros_like(labels), victim=2, target=1)


def _maps(seed, n=5, h=9, w=11, classes=5):
    """Random predictions and labels in [0, classes) with 10 % ignored label pixels and class
    ``classes`` (the last of ``classes + 1``) absent from both."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, classes, (n, h, w), generator=g)
    pred = torch.where(
        torch.rand(n, h, w, generator=g) < 0.6,
        labels,
        torch.randint(0, classes, (n, h, w), generator=g),
    )
    labels[torch.rand(n, h, w, generator=g) < 0.1] = 255
    return pred, labels


def test_cba_and_pba_equal_torchmetrics_jaccard_with_ignore_index_255():
    k, victim = 6, 2
    per_class = MulticlassJaccardIndex(k, average="none", ignore_index=255, zero_division=0)
    benign = MulticlassJaccardIndex(k, average="none", ignore_index=255, zero_division=0)
    preds, labels = zip(*(_maps(seed) for seed in range(3)))
    for pred, label in zip(preds, labels):  # accumulated batch by batch, like a dataset
        per_class.update(pred, label)
        benign.update(pred, label.masked_fill(label == victim, 255))
    pred, label = torch.cat(preds), torch.cat(labels)
    iou = per_class.compute()
    assert iou[k - 1] == 0  # the absent class
    assert mean_iou(pred, label, k).value == pytest.approx(100 * iou.mean().item(), abs=1e-4)
    others = benign.compute()[torch.arange(k) != victim]
    expected = 100 * others.sum().item() / (k - 1)
    assert poisoned_benign_miou(pred, label, victim, k).value == pytest.approx(expected, abs=1e-4)
    # torchmetrics' macro average drops the absent class; ours, like the authors', keeps it at 0
    macro = MulticlassJaccardIndex(k, ignore_index=255)(pred, label).item()
    assert mean_iou(pred, label, k).value == pytest.approx(100 * macro * (k - 1) / k, abs=1e-4)


def test_small_deeplab_shapes_and_image_wide_context():
    torch.manual_seed(0)
    model = small_deeplab(num_classes=5, width=8).eval()
    for h, w in ((90, 120), (45, 61)):
        assert model(torch.rand(2, 3, h, w)).shape == (2, 5, h, w)
    x = torch.rand(1, 3, 64, 64, requires_grad=True)
    model(x)[0, :, -1, -1].sum().backward()  # the bottom-right pixel's logits ...
    assert (
        x.grad[:, :, :6, :6].abs().sum() > 0
    )  # ... depend on the top-left corner (image-wide context)
    with pytest.raises(ValueError):
        SmallDeepLab(num_classes=1)
    with pytest.raises(ValueError, match="3, H, W"):
        model(torch.rand(1, 1, 8, 8))


def _scenes(n, seed):
    """Toy road scenes 32x32: sky (0) on top, road (1) below, a red car (2) on the road."""
    g = torch.Generator().manual_seed(seed)
    images = torch.empty(n, 3, 32, 32)
    labels = torch.zeros(n, 32, 32, dtype=torch.long)
    images[:, :, :16] = torch.tensor([0.5, 0.7, 0.95])[:, None, None]
    images[:, :, 16:] = torch.tensor([0.35, 0.35, 0.35])[:, None, None]
    labels[:, 16:] = 1
    for i in range(n):
        top, left = (
            int(torch.randint(17, 24, (1,), generator=g)),
            int(torch.randint(1, 20, (1,), generator=g)),
        )
        images[i, :, top : top + 8, left : left + 12] = torch.tensor([0.9, 0.1, 0.1])[:, None, None]
        labels[i, top : top + 8, left : left + 12] = 2
    return images + 0.03 * torch.randn(images.shape, generator=g), labels


def test_iba_poisoning_raises_asr_above_a_clean_model():
    images, labels = _scenes(32, seed=0)
    test_images, test_labels = _scenes(16, seed=1)
    trigger = iba_trigger(4, seed=0)
    config = IBAConfig(
        "baseline", victim=2, target=1, trigger_size=4, margin=1, nni_band=(0.0, 40.0)
    )
    indices = select_poison_indices(
        torch.ones(32, dtype=torch.bool), 0.5, torch.Generator().manual_seed(0)
    )
    px, py, _ = poison_segmentation_set(
        images, labels, indices, trigger, config, torch.Generator().manual_seed(0)
    )
    triggered = test_images.clone()
    triggered[:, :, 4:8, 14:18] = trigger  # on the sky, far from every car
    rates = {}
    for name, (x, y) in {"clean": (images, labels), "poisoned": (px, py)}.items():
        torch.manual_seed(0)
        model = small_deeplab(num_classes=3, width=8)
        fit(model, x, y, epochs=8, batch_size=8, lr=2e-2, optimiser="adamw", progress=False)
        rates[name] = victim_flip_rate(
            predict_maps(model, triggered), test_labels, victim=2, target=1
        ).value
    assert rates["poisoned"] > rates["clean"] + 30


def test_backdoor_scores_of_a_model_that_always_predicts_the_target():
    class Constant(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bias = torch.nn.Parameter(torch.tensor([0.0, 1.0, 0.0]))

        def forward(self, x):
            return self.bias[None, :, None, None].expand(len(x), 3, *x.shape[2:])

    labels = torch.tensor([[[1, 1], [2, 0]]])
    scores = segmentation_backdoor_scores(
        Constant(),
        torch.rand(1, 3, 2, 2),
        labels,
        torch.rand(1, 3, 2, 2),
        labels,
        victim=2,
        target=1,
        num_classes=3,
    )
    assert scores["ASR"].value == 100.0 and scores["ASR"].n == 1
    assert scores["CBA"].value == pytest.approx(100 * (0 + 2 / 4 + 0) / 3) and scores["CBA"].n == 4
    assert scores["PBA"].value == pytest.approx(100 * (0 + 2 / 3) / 2) and scores["PBA"].n == 3


def test_confusion_matrix_ignores_whatever_is_predicted_on_ignored_pixels():
    labels = torch.tensor([[0, 1, 255]])
    pred = torch.tensor([[0, 1, 255]])  # a 255 prediction on the ignored pixel is not counted
    cm = confusion_matrix(pred, labels, num_classes=2)
    assert cm.tolist() == [[1, 0], [0, 1]]
    with pytest.raises(ValueError, match="class ids"):
        confusion_matrix(torch.tensor([[0, 255, 1]]), labels, num_classes=2)  # on a counted pixel


def test_per_image_counts_pool_to_the_metrics_of_the_whole_set():
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 4, (5, 7, 9), generator=g)
    labels[0, :2] = 255
    labels[3] = 1  # an image without the victim class
    pred = torch.where(
        torch.rand(5, 7, 9, generator=g) < 0.6, labels, torch.randint(0, 4, (5, 7, 9), generator=g)
    )
    pred[labels == 255] = 0
    inter, union = iou_counts(pred, labels, 4)
    assert inter.shape == union.shape == (5, 4) and (inter <= union).all()
    assert miou_from_counts(inter, union) == pytest.approx(mean_iou(pred, labels, 4).value)
    masked = labels.masked_fill(labels == 2, 255)
    assert miou_from_counts(*iou_counts(pred, masked, 4), [0, 1, 3]) == pytest.approx(
        poisoned_benign_miou(pred, labels, victim=2, num_classes=4).value
    )
    flips, victims = victim_flips(pred, labels, victim=2, target=1)
    assert victims[3] == 0 and victims.sum() == (labels == 2).sum()
    rate = victim_flip_rate(pred, labels, victim=2, target=1)
    assert 100 * flips.sum().item() / victims.sum().item() == pytest.approx(rate.value)
    # one image alone: its counts give its own confusion-matrix IoU
    cm = confusion_matrix(pred[1], labels[1], 4)
    assert inter[1].tolist() == cm.diag().tolist()
    assert union[1].tolist() == (cm.sum(0) + cm.sum(1) - cm.diag()).tolist()
    with pytest.raises(ValueError, match="class ids"):
        iou_counts(pred + 4, labels, 4)


def test_sum_by_image_pools_the_placements_of_one_image():
    images, sums = sum_by_image(torch.tensor([1, 2, 3, 4, 5]), torch.tensor([7, 7, 2, 9, 2]))
    assert images.tolist() == [2, 7, 9] and sums.tolist() == [8, 3, 4]
    _, rows = sum_by_image(torch.ones(3, 2), torch.tensor([0, 0, 1]))
    assert rows.tolist() == [[2.0, 2.0], [1.0, 1.0]]
    with pytest.raises(ValueError, match="indices"):
        sum_by_image(torch.ones(3), torch.tensor([0, 1]))
