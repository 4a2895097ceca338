import copy
import types

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchattacks
from torch import nn

from backdoorbook.attacks.transfer import ATTACKS as TRANSFER_ATTACKS
from backdoorbook.attacks.transfer import (
    DIM,
    ILA,
    MIFGSM,
    NIFGSM,
    SGM,
    SIM,
    TIM,
    VMIFGSM,
    Admix,
    EnsembleMIFGSM,
    LogitEnsemble,
    black_box_mean,
    create_attack,
    fooled,
    gaussian_kernel,
    middle_layer,
    per_image_success,
    residual_branch_ends,
    select_agreed_correct,
    success_matrix,
    success_rate,
    transfer_table,
)
from backdoorbook.models import cifar_resnet

EPS = 8 / 255
#: Tiny settings for the expensive methods, so the whole registry runs in seconds.
TINY = {"vmifgsm": {"samples": 2}, "sim": {"scales": 2}, "admix": {"mixes": 2, "scales": 2}}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model():
    """ResNet-14: two blocks per stage, so SGM has a first block to leave and one to decay."""
    torch.manual_seed(0)
    return cifar_resnet(14).eval()


@pytest.fixture(scope="module")
def batch():
    generator = torch.Generator().manual_seed(1)
    return torch.rand(6, 3, 16, 16, generator=generator), torch.randint(
        0, 10, (6,), generator=generator
    )


def build(name, model, **kwargs):
    surrogate = [model, model] if name == "ensemble" else model
    return create_attack(
        name,
        surrogate,
        eps=EPS,
        **({} if name == "fgsm" else {"steps": 5}),
        **TINY.get(name, {}),
        **kwargs,
    )


REFERENCES = {
    "fgsm": (dict(), lambda m: torchattacks.FGSM(m, eps=EPS)),
    "ifgsm": (
        dict(steps=5, alpha=2 / 255),
        lambda m: torchattacks.BIM(m, eps=EPS, alpha=2 / 255, steps=5),
    ),
    "mifgsm": (
        dict(steps=5),
        lambda m: torchattacks.MIFGSM(m, eps=EPS, alpha=EPS / 5, steps=5, decay=1.0),
    ),
    "nifgsm": (
        dict(steps=5),
        lambda m: torchattacks.NIFGSM(m, eps=EPS, alpha=EPS / 5, steps=5, decay=1.0),
    ),
    "tim": (
        dict(steps=5, kernel_size=5, nsig=3),
        lambda m: torchattacks.TIFGSM(
            m,
            eps=EPS,
            alpha=EPS / 5,
            steps=5,
            decay=1.0,
            kernel_name="gaussian",
            len_kernel=5,
            nsig=3,
            resize_rate=0.9,
            diversity_prob=0.0,
            random_start=False,
        ),
    ),
}


@pytest.mark.parametrize("name", list(REFERENCES))
def test_deterministic_attacks_equal_torchattacks(name, model, batch):
    images, labels = batch
    kwargs, reference = REFERENCES[name]
    ours = create_attack(name, model, eps=EPS, **kwargs)(images, labels)
    theirs = reference(model)(images, labels)
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=0)
    assert not torch.equal(ours, images)


@pytest.mark.parametrize("name", list(TRANSFER_ATTACKS))
def test_every_attack_stays_in_budget_and_raises_the_surrogate_loss(name, model, batch):
    images, labels = batch
    adv = build(name, model, seed=0)(images, labels)
    assert adv.shape == images.shape and adv.dtype == images.dtype and not adv.requires_grad
    assert adv.min() >= 0 and adv.max() <= 1
    assert (adv - images).abs().max() <= EPS + 1e-6
    assert (adv - images).abs().max() >= EPS / 5 - 1e-6  # at least one full step was taken
    with torch.no_grad():
        assert F.cross_entropy(model(adv), labels) > F.cross_entropy(model(images), labels)


@pytest.mark.parametrize("name", ["dim", "vmifgsm", "admix"])
def test_randomised_attacks_are_reproducible_under_a_seed(name, model, batch):
    images, labels = batch
    first, again = (
        build(name, model, seed=3)(images, labels),
        build(name, model, seed=3)(images, labels),
    )
    other = build(name, model, seed=4)(images, labels)
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_transformations_reduce_to_mi_fgsm_when_switched_off(model, batch):
    images, labels = batch
    reference = MIFGSM(model, eps=EPS, steps=5)(images, labels)
    switched_off = [
        DIM(model, eps=EPS, steps=5, diversity_prob=0.0),
        TIM(model, eps=EPS, steps=5, kernel_size=1),
        SIM(model, eps=EPS, steps=5, scales=1),
        Admix(model, eps=EPS, steps=5, mixes=1, strength=0.0, scales=1),
        SGM(model, eps=EPS, steps=5, gamma=1.0),
        EnsembleMIFGSM([model], eps=EPS, steps=5),
    ]
    for attack in switched_off:
        torch.testing.assert_close(
            attack(images, labels), reference, atol=1e-6, rtol=0, msg=repr(attack)
        )


def test_sgm_decays_residual_gradients_without_changing_the_forward_pass(model, batch):
    images, labels = batch
    stages = [model.model.layer1, model.model.layer2, model.model.layer3]
    assert residual_branch_ends(model) == [stage[1].bn2 for stage in stages]  # not block 0
    with torch.no_grad():
        logits = model(images)
    adv = SGM(model, eps=EPS, steps=5, gamma=0.2)(images, labels)
    assert not torch.equal(adv, MIFGSM(model, eps=EPS, steps=5)(images, labels))
    assert all(not module._forward_hooks for module in residual_branch_ends(model))  # hooks removed
    with torch.no_grad():
        assert torch.equal(model(images), logits)
    with pytest.raises(ValueError, match="residual surrogate"):
        SGM(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(768, 10)))
    with pytest.raises(ValueError, match="two or more BasicBlocks"):
        SGM(cifar_resnet(8))  # one block per stage: nothing that SGM decays


def test_targeted_attack_moves_towards_the_target(model, batch):
    images, _ = batch
    target = torch.full((len(images),), 3)
    adv = MIFGSM(model, eps=EPS, steps=5, targeted=True)(images, target)
    with torch.no_grad():
        assert F.cross_entropy(model(adv), target) < F.cross_entropy(model(images), target)


def test_gaussian_kernel_and_logit_ensemble():
    kernel = gaussian_kernel(5, 3.0)
    assert kernel.shape == (5, 5) and torch.isclose(kernel.sum(), torch.tensor(1.0))
    assert torch.equal(kernel, kernel.T) and kernel.argmax() == 12  # peak in the centre
    a, b = torch.nn.Linear(4, 3), torch.nn.Linear(4, 3)
    x = torch.randn(2, 4)
    torch.testing.assert_close(LogitEnsemble([a, b])(x), (a(x) + b(x)) / 2)


def test_attacks_leave_the_surrogates_in_their_mode(model, batch):
    images, labels = batch
    for name in TRANSFER_ATTACKS:
        build(name, model, seed=0)(images, labels)
        assert not any(module.training for module in model.modules()), name


def test_bad_inputs_are_clear_errors(model, batch):
    images, labels = batch
    attack = MIFGSM(model)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        attack(images * 2, labels)
    with pytest.raises(ValueError, match="labels must be an integer tensor"):
        attack(images, labels[:2])
    with pytest.raises(ValueError, match=r"\[N, C, H, W\]"):
        attack(images[0], labels)
    with pytest.raises(ValueError, match="unknown attack 'pgd'; registered attacks: fgsm"):
        create_attack("pgd", model)
    with pytest.raises(ValueError, match="eps must be in"):
        MIFGSM(model, eps=0)
    with pytest.raises(ValueError, match="sequence of surrogate"):
        EnsembleMIFGSM(model)
    with pytest.raises(ValueError, match="no module 'model.nope'"):
        create_attack("ila", model, layer="model.nope")


def test_transfer_table_scores_every_pair_and_flags_white_box_cells(model, batch):
    images, labels = batch
    torch.manual_seed(1)
    other = cifar_resnet(8).eval()
    targets = {"a": model, "b": other}
    table, examples = transfer_table(
        ["fgsm", "ensemble"],
        {"a": model, "ens": [model, other]},
        targets,
        images,
        labels,
        eps_values=[EPS, 2 * EPS],
        steps=2,
        ensemble_members={"ens": ["a", "b"]},
        keep=2,
        progress=False,
    )
    assert len(table) == 2 * 2 * 2  # (fgsm from a, ensemble from ens) x 2 eps x 2 targets
    assert set(table.eps) == {8, 16} and (table.n == len(images)).all()
    assert table[table.surrogate == "ens"].white_box.all()
    assert table.set_index(["surrogate", "target"]).white_box.xs("a").tolist() == [True, False] * 2
    fgsm_a = create_attack("fgsm", model, eps=EPS)(images, labels)
    assert table.query(
        "method == 'fgsm' and eps == 8 and target == 'b'"
    ).success.item() == success_rate(other, fgsm_a, labels)
    assert torch.equal(examples[("fgsm", 8, "a")], fgsm_a[:2])
    matrix = success_matrix(table, "fgsm", 16)
    assert list(matrix.index) == ["a"] and list(matrix.columns) == ["a", "b"]
    means = black_box_mean(table)
    assert (
        means.loc["FGSM", 8]
        == table.query("method == 'fgsm' and eps == 8 and target == 'b'").success.item()
    )
    assert means.loc["Ens-MI"].isna().all()  # every ensemble cell is white-box here
    for row in table.itertuples():  # the per-image outcomes are the rate's units
        assert row.fooled.shape == (len(images),) and row.fooled.dtype == bool
        assert row.success == pytest.approx(100 * row.fooled.mean())
        assert 0 <= row.attack_cpu_s
    assert np.array_equal(
        table.query("method == 'fgsm' and eps == 8 and target == 'b'").fooled.item(),
        fooled(other, fgsm_a, labels),
    )


def test_per_image_success_pairs_the_images_of_black_box_pairs(model, batch):
    images, labels = batch
    torch.manual_seed(2)
    b, c = cifar_resnet(8).eval(), cifar_resnet(8).eval()
    targets = {"a": model, "b": b, "c": c}
    table, _ = transfer_table(
        ["ifgsm", "mifgsm"],
        {"a": model, "b": b},
        targets,
        images,
        labels,
        eps_values=[EPS],
        steps=2,
        surrogate_methods={"b": ["mifgsm"]},
        progress=False,
    )
    # b runs only MI-FGSM: three runs, each scored on three targets
    assert sorted(set(zip(table.method, table.surrogate))) == [
        ("ifgsm", "a"),
        ("mifgsm", "a"),
        ("mifgsm", "b"),
    ]
    mi = per_image_success(table, "mifgsm", 8)
    assert mi.shape == (len(images),)
    # four black-box pairs (a -> b, a -> c, b -> a, b -> c): each image's share of them fooled
    rows = table.query("method == 'mifgsm' and not white_box")
    assert len(rows) == 4
    assert np.allclose(mi, 100 * np.mean(np.stack(list(rows.fooled)), axis=0))
    assert mi.mean() == pytest.approx(black_box_mean(table).loc["MI-FGSM", 8])
    only = per_image_success(table, "mifgsm", 8, surrogates=["a"], targets=["c"])
    assert np.array_equal(
        only, 100.0 * rows.query("surrogate == 'a' and target == 'c'").fooled.item()
    )
    pooled = per_image_success(table, ["ifgsm", "mifgsm"], 8, surrogates=["a"])
    ifgsm = per_image_success(table, "ifgsm", 8, surrogates=["a"])
    assert np.allclose(
        pooled, (ifgsm + per_image_success(table, "mifgsm", 8, surrogates=["a"])) / 2
    )
    with pytest.raises(ValueError, match="no black-box pairs"):
        per_image_success(table, "ifgsm", 8, surrogates=["b"])
    with pytest.raises(ValueError, match="not given"):
        transfer_table(
            ["fgsm"],
            {"a": model},
            targets,
            images,
            labels,
            eps_values=[EPS],
            surrogate_methods={"z": ["fgsm"]},
            progress=False,
        )


def test_select_agreed_correct_keeps_images_all_models_get_right():
    class Fixed(torch.nn.Module):
        def __init__(self, predictions):
            super().__init__()
            self.predictions, self.weight = predictions, torch.nn.Parameter(torch.zeros(1))

        def forward(self, x):
            return F.one_hot(self.predictions[: len(x)], 3).float()

    labels = torch.tensor([0, 1, 2, 0, 1])
    models = {"x": Fixed(torch.tensor([0, 1, 0, 0, 1])), "y": Fixed(torch.tensor([0, 2, 2, 0, 1]))}
    assert select_agreed_correct(models, torch.zeros(5, 3, 2, 2), labels, n=10).tolist() == [
        0,
        3,
        4,
    ]
    assert select_agreed_correct(models, torch.zeros(5, 3, 2, 2), labels, n=2).tolist() == [0, 3]


# ----------------------------------------------------------------- reference implementations
# In float64, so that a different order of summation cannot flip the sign of a gradient entry
# that is nearly zero.
#: Settings other than the defaults for the reference tests below.
REF = dict(eps=6 / 255, alpha=1.5 / 255, steps=4)


@pytest.fixture(scope="module")
def model64(model):
    return copy.deepcopy(model).double()


@pytest.fixture(scope="module")
def batch64(batch):
    return batch[0].double(), batch[1]


def recorded(method, log, tag):
    """``method``, appending ``(tag, value)`` to ``log`` for every value it returns."""

    def call(*args):
        log.append((tag, method(*args)))
        return log[-1][1]

    return call


class DIFGSMResizedBack(torchattacks.DIFGSM):
    """torchattacks' DI-FGSM with the transformed input resized back to the input's side."""

    def input_diversity(self, x):
        out = super().input_diversity(x)
        if out.shape == x.shape:
            return out
        return F.interpolate(out, size=x.shape[-2:], mode="bilinear", align_corners=False)


def test_dim_equals_torchattacks_difgsm_on_the_same_draws(model64, batch64, monkeypatch):
    images, labels = batch64
    settings = dict(steps=6, decay=0.8, resize_rate=1.3, diversity_prob=0.7)
    ours = DIM(model64, eps=REF["eps"], alpha=REF["alpha"], seed=1, **settings)
    log = []
    ours.rand, ours.randint = recorded(ours.rand, log, "rand"), recorded(ours.randint, log, "int")
    adv = ours(images, labels)
    iterations = []  # per iteration: [u, inner side, top, left], or [u] when not transformed
    for tag, value in log:
        iterations.append([float(value)]) if tag == "rand" else iterations[-1].append(value)
    assert len(iterations) == 6 and {len(draws) for draws in iterations} == {1, 4}
    # torchattacks draws the side and the two offsets, then decides whether to use them
    queue = []
    for u, *draws in iterations:
        queue += [("int", d) for d in draws or [None] * 3] + [("rand", u)]

    def replay_randint(low, high, size, dtype):
        tag, value = queue.pop(0)
        assert tag == "int"
        value = low if value is None else value
        assert low <= value < high, f"our draw {value} is outside torchattacks' [{low}, {high})"
        return torch.tensor([value], dtype=dtype)

    def replay_rand(*size):
        tag, value = queue.pop(0)
        assert tag == "rand"
        return torch.tensor([value])

    theirs = DIFGSMResizedBack(model64, eps=REF["eps"], alpha=REF["alpha"], **settings)
    with monkeypatch.context() as patch:
        patch.setattr(torch, "randint", replay_randint)
        patch.setattr(torch, "rand", replay_rand)
        expected = theirs(images, labels)
    assert not queue
    torch.testing.assert_close(adv, expected, atol=1e-6, rtol=0)


def test_vmifgsm_equals_torchattacks_on_the_same_neighbours(model64, batch64, monkeypatch):
    images, labels = batch64
    ours = VMIFGSM(model64, decay=0.7, samples=3, beta=2.0, seed=2, **REF)
    log = []
    ours.rand = recorded(ours.rand, log, "rand")
    adv = ours(images, labels)
    assert len(log) == REF["steps"] and log[0][1].shape == (3, *images.shape)
    uniforms = iter([u for _, draw in log for u in draw])  # N draws per iteration, in order

    class Uniform:
        """Stands for ``torch.randn_like(images)``; ``uniform_`` maps our draw to its range."""

        def uniform_(self, low, high):
            return low + (high - low) * next(uniforms)

    theirs = torchattacks.VMIFGSM(model64, decay=0.7, N=3, beta=2.0, **REF)
    with monkeypatch.context() as patch:
        patch.setattr(torch, "randn_like", lambda like: Uniform())
        expected = theirs(images, labels)
    assert next(uniforms, None) is None
    torch.testing.assert_close(adv, expected, atol=1e-6, rtol=0)
    assert not torch.equal(adv, MIFGSM(model64, decay=0.7, **REF)(images, labels))


class SINIFGSM(SIM, NIFGSM):
    """SI-NI-FGSM as a composition of the hooks: SIM's scale copies of NI's look-ahead point."""


def test_si_composed_with_ni_equals_torchattacks_sinifgsm(model64, batch64):
    images, labels = batch64
    adv = SINIFGSM(model64, decay=0.7, scales=3, **REF)(images, labels)
    expected = torchattacks.SINIFGSM(model64, decay=0.7, m=3, **REF)(images, labels)
    torch.testing.assert_close(adv, expected, atol=1e-6, rtol=0)


def test_ensemble_equals_torchattacks_mifgsm_on_a_logit_average(model64, batch64):
    images, labels = batch64
    torch.manual_seed(1)
    other = cifar_resnet(8).double().eval()

    class MeanLogits(nn.Module):
        def __init__(self, first, second):
            super().__init__()
            self.first, self.second = first, second

        def forward(self, x):
            return (self.first(x) + self.second(x)) / 2

    adv = EnsembleMIFGSM([model64, other], decay=0.6, **REF)(images, labels)
    expected = torchattacks.MIFGSM(MeanLogits(model64, other).eval(), decay=0.6, **REF)(
        images, labels
    )
    torch.testing.assert_close(adv, expected, atol=1e-6, rtol=0)
    assert not torch.equal(adv, MIFGSM(model64, decay=0.6, **REF)(images, labels))


def with_relu_modules(resnet):
    """A copy of a wrapped CIFAR ResNet with its ReLUs as modules, laid out as in torchvision: one
    ``relu`` in the stem and one per block, used after ``bn1`` and again after the sum."""
    net = copy.deepcopy(resnet)

    def block_forward(block, x):
        out = block.relu(block.bn1(block.conv1(x)))
        return block.relu(block.bn2(block.conv2(out)) + block.shortcut(x))

    def net_forward(inner, x):
        out = inner.relu(inner.bn1(inner.conv1(x)))
        out = inner.layer3(inner.layer2(inner.layer1(out)))
        return inner.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))

    net.model.relu, net.model.forward = nn.ReLU(), types.MethodType(net_forward, net.model)
    for stage in (net.model.layer1, net.model.layer2, net.model.layer3):
        for block in stage:
            block.relu, block.forward = nn.ReLU(), types.MethodType(block_forward, block)
    return net


def add_skip_gradient_hooks(net, gamma):
    """SGM's hooks as the authors place them (csdongxian/skip-connections-matter utils_sgm.py),
    with torch's full backward hooks: γ times the gradient through every ReLU module whose name
    does not contain "0.relu", and every block's input gradient divided by its std over the
    batch."""
    for name, module in net.named_modules():
        if "relu" in name and "0.relu" not in name:
            module.register_full_backward_hook(lambda m, grad_in, grad_out: (gamma * grad_in[0],))
        parts = name.split(".")
        if len(parts) >= 2 and "layer" in parts[-2]:
            module.register_full_backward_hook(
                lambda m, grad_in, grad_out: (grad_in[0] / grad_in[0].std(),)
            )
    return net


def test_sgm_equals_mifgsm_on_the_authors_relu_hooks(model64, batch64):
    images, labels = batch64
    hooked = add_skip_gradient_hooks(with_relu_modules(model64), gamma=0.3).eval()
    with torch.no_grad():
        assert torch.equal(hooked(images), model64(images))  # the same network
    adv = SGM(model64, decay=0.9, gamma=0.3, **REF)(images, labels)
    expected = torchattacks.MIFGSM(hooked, decay=0.9, **REF)(images, labels)
    torch.testing.assert_close(adv, expected, atol=1e-6, rtol=0)
    assert not torch.equal(adv, MIFGSM(model64, decay=0.9, **REF)(images, labels))


def test_sgm_scales_the_residual_branch_gradient_by_gamma_except_in_first_blocks(model):
    x = torch.rand(2, 16, 8, 8, generator=torch.Generator().manual_seed(0))
    weights = torch.randn(2, 16, 8, 8, generator=torch.Generator().manual_seed(1))

    def input_gradient(function):
        point = x.clone().requires_grad_(True)
        return torch.autograd.grad((weights * function(point)).sum(), point)[0]

    def parts(block):
        """The gradient through the skip connection and through the residual branch."""

        def branch(z):
            return block.bn2(block.conv2(F.relu(block.bn1(block.conv1(z)))))

        skip = input_gradient(lambda z: F.relu(branch(z).detach() + z))
        through_branch = input_gradient(lambda z: F.relu(branch(z) + z.detach()))
        return skip, through_branch

    first, later = model.model.layer1[0], model.model.layer1[1]
    expected = {block: parts(block) for block in (first, later)}
    with SGM(model, gamma=0.25).surrogate_context():
        decayed = {block: input_gradient(block) for block in (first, later)}
    skip, through_branch = expected[later]
    assert through_branch.abs().max() > 1e-3 and skip.abs().max() > 1e-3
    torch.testing.assert_close(decayed[later], skip + 0.25 * through_branch)
    torch.testing.assert_close(decayed[first], sum(expected[first]))  # block 0: not decayed
    torch.testing.assert_close(input_gradient(later), skip + through_branch)  # hooks removed


def test_ila_layer_is_the_middle_entry_of_the_network():
    layers = {depth: middle_layer(cifar_resnet(depth)) for depth in (8, 14, 20, 32, 44, 56)}
    assert layers == {
        8: "model.layer2.0",
        14: "model.layer2.0",
        20: "model.layer2.1",
        32: "model.layer2.2",
        44: "model.layer2.3",
        56: "model.layer2.4",
    }
    bare = cifar_resnet(20).model
    assert middle_layer(bare) == "layer2.1"
    assert ILA(cifar_resnet(20)).layer_name == "model.layer2.1"


def test_ila_equals_the_projection_attack_on_an_mifgsm_baseline(model64, batch64):
    """Reference: torchattacks' MI-FGSM as the baseline, then sign steps from x on the projection
    loss of TransferAttack's ILA, ⟨Δ, Δ'⟩ / ‖Δ'‖² over the whole batch flattened."""
    images, labels = batch64
    eps, alpha, steps = REF["eps"], REF["alpha"], REF["steps"]
    adv = ILA(model64, decay=0.8, **REF)(images, labels)
    baseline = torchattacks.MIFGSM(model64, decay=0.8, **REF)(images, labels)
    features = []
    handle = model64.model.layer2[0].register_forward_hook(lambda m, i, out: features.append(out))
    try:
        with torch.no_grad():
            model64(images), model64(baseline)
        clean, guide = features[0], (features[1] - features[0]).reshape(1, -1)
        delta = torch.zeros_like(images)
        for _ in range(steps):
            delta.requires_grad_(True)
            features.clear()
            model64(images + delta)
            shift = (features[0] - clean).reshape(1, -1)
            loss = shift @ (guide / guide.norm()).T / guide.norm()
            grad = torch.autograd.grad(loss.sum(), delta)[0]
            delta = torch.clamp(delta.detach() + alpha * grad.sign(), -eps, eps)
            delta = torch.min(torch.max(delta, -images), 1 - images)
    finally:
        handle.remove()
    torch.testing.assert_close(adv, images + delta, atol=1e-6, rtol=0)
    assert not torch.equal(adv, baseline)
