import pytest
import torch
import torch.nn.functional as F
import torchattacks

from backdoorbook.attacks.transfer import ATTACKS as TRANSFER_ATTACKS
from backdoorbook.attacks.transfer import (
    DIM,
    MIFGSM,
    SGM,
    SIM,
    TIM,
    Admix,
    EnsembleMIFGSM,
    LogitEnsemble,
    black_box_mean,
    create_attack,
    gaussian_kernel,
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
    torch.manual_seed(0)
    return cifar_resnet(8).eval()


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
    assert len(residual_branch_ends(model)) == 3  # ResNet-8: one BasicBlock per stage
    with torch.no_grad():
        logits = model(images)
    adv = SGM(model, eps=EPS, steps=5, gamma=0.2)(images, labels)
    assert not torch.equal(adv, MIFGSM(model, eps=EPS, steps=5)(images, labels))
    assert all(not module._forward_hooks for module in residual_branch_ends(model))  # hooks removed
    with torch.no_grad():
        assert torch.equal(model(images), logits)
    with pytest.raises(ValueError, match="residual surrogate"):
        SGM(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(768, 10)))


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
