import math

import pytest
import torch
from torch import nn

from backdoorbook.training.supervised import fit, random_crop_flip


def _toy(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, 8, 8, generator=g)
    y = (x[:, 0].mean((1, 2)) > x[:, 1].mean((1, 2))).long()  # learnable from colour means
    return x, y


def _net():
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 2),
    )


def test_fit_lowers_the_loss_and_is_seeded():
    x, y = _toy()
    torch.manual_seed(0)
    a = _net()
    torch.manual_seed(0)
    b = _net()
    ha = fit(a, x, y, epochs=15, batch_size=16, lr=0.1, seed=3, progress=False)
    hb = fit(b, x, y, epochs=15, batch_size=16, lr=0.1, seed=3, progress=False)
    assert ha.loss[-1] < ha.loss[0]
    assert ha.loss == hb.loss
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not a.training


def test_fit_trains_segmentation_targets_with_ignore_index():
    x = torch.rand(8, 3, 8, 8)
    y = (x[:, 0] > 0.5).long()
    y[:, 0, 0] = 255
    net = nn.Conv2d(3, 2, 1)
    history = fit(
        net,
        x,
        y,
        epochs=20,
        batch_size=4,
        lr=0.5,
        optimiser="adamw",
        progress=False,
        augment=random_crop_flip(2),
    )
    assert history.accuracy[-1] > history.accuracy[0]


def test_crop_flip_moves_labels_with_pixels():
    x = torch.arange(2 * 4 * 4, dtype=torch.float32).view(2, 1, 4, 4).repeat(1, 3, 1, 1) / 32
    y = (x[:, 0] * 32).long()
    torch.manual_seed(0)
    ax, ay = random_crop_flip(0)(x, y)
    assert torch.equal((ax[:, 0] * 32).round().long(), ay)
    ax, ay = random_crop_flip(1)(x, y)
    assert ax.shape == x.shape and ay.shape == y.shape


def test_fit_rejects_bad_arguments():
    x, y = _toy(8)
    with pytest.raises(ValueError, match="unknown optimiser"):
        fit(_net(), x, y, epochs=1, optimiser="lbfgs")
    with pytest.raises(ValueError, match="need inputs"):
        fit(_net(), x, y[:4], epochs=1)


def test_fit_resumes_exactly_where_an_interrupted_run_stopped(tmp_path):
    images, labels = torch.rand(32, 3, 8, 8), torch.arange(32) % 2

    def model_and_run(checkpoint=None, fail_at=None):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 36, 2))
        calls = []

        def loss_fn(logits, y):
            calls.append(1)
            if fail_at is not None and len(calls) == fail_at:
                raise KeyboardInterrupt  # the run is stopped part-way through epoch 2
            return nn.functional.cross_entropy(logits, y)

        history = fit(
            model,
            images,
            labels,
            epochs=3,
            batch_size=8,
            lr=0.1,
            loss_fn=loss_fn,
            augment=random_crop_flip(2),
            seed=3,
            warmup_steps=2,
            checkpoint=checkpoint,
            progress=False,
        )
        return model, history

    whole, whole_history = model_and_run()
    checkpoint = tmp_path / "state.safetensors"
    with pytest.raises(KeyboardInterrupt):
        model_and_run(checkpoint, fail_at=6)
    resumed, resumed_history = model_and_run(checkpoint)
    assert resumed_history.loss == whole_history.loss and len(resumed_history.seconds) == 3
    assert all(
        torch.equal(a, b)
        for a, b in zip(whole.state_dict().values(), resumed.state_dict().values())
    )


def test_fit_can_step_its_cosine_schedule_per_epoch_down_to_a_final_rate():
    x, y = _toy(16)
    seen = []

    def loss_fn(logits, targets):  # records the rate each step trains with
        seen.append(optimiser_of[0].param_groups[0]["lr"])
        return nn.functional.cross_entropy(logits, targets)

    optimiser_of = []
    original = torch.optim.AdamW.__init__

    def spy(self, *args, **kwargs):
        original(self, *args, **kwargs)
        optimiser_of.append(self)

    torch.optim.AdamW.__init__ = spy
    try:
        fit(
            _net(),
            x,
            y,
            epochs=3,
            batch_size=8,
            lr=0.1,
            optimiser="adamw",
            loss_fn=loss_fn,
            final_lr=1e-3,
            schedule_every="epoch",
            progress=False,
        )
    finally:
        torch.optim.AdamW.__init__ = original
    per_epoch = [seen[0:2], seen[2:4], seen[4:6]]
    assert all(a == b for a, b in per_epoch)  # constant within an epoch
    expected = [1e-3 + (0.1 - 1e-3) * (1 + math.cos(math.pi * e / 3)) / 2 for e in range(3)]
    assert [p[0] for p in per_epoch] == pytest.approx(expected)
    with pytest.raises(ValueError, match="schedule_every"):
        fit(_net(), x, y, epochs=1, schedule_every="batch", progress=False)
