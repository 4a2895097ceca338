"""FLBA: a backdoor in few-shot fine-tuning through a hidden, correctly labelled support set.

Liu, Jia, Gu, Xun, Liang and Cao, "Does Few-shot Learning Suffer from Backdoor Attacks?",
AAAI 2024, arXiv:2401.01377 — FLBA, the Few-shot Learning Backdoor Attack.

Threat model: a victim fine-tunes a classifier on a tiny support set (N-way K-shot) on top
of a frozen pre-trained backbone. The attacker knows the backbone and may alter the support
images before fine-tuning, but not their labels (dirty labels are conspicuous among five
images) and not the training procedure. At test time any query carrying the trigger should
be classified as the target class, while clean queries stay correct.

1. :func:`optimise_trigger`: a ``size`` x ``size`` bottom-right patch optimised by signed
   gradient steps to minimise the cosine similarity between the features of patched and
   clean support images (so the patch dominates the features of whatever it is pasted on).
2. :func:`flba_perturb`: PGD perturbations ``||delta||_inf <= eps`` of the support images,
   labels untouched. With ``mu`` the mean feature of the patched support set (fixed before
   PGD), target-class images get the *attractive* perturbation, maximising
   ``cos(f(x + delta), mu) + lam * cos(f(x + delta), f(x))``; the others the *repulsive* one,
   the first term negated. Fine-tuning then ties the target class to the trigger's feature
   direction and pushes the other classes away from it.
3. :func:`badnets_support`: the ordinary baseline, dirty-label support poisoning: a solid
   white square on some non-target support images, relabelled as the target.

:func:`attack_episode` fine-tunes the victim's head on every support set of one episode and
scores each; :func:`flba_rates` scores the full attack alone for a given patch (to vary its
settings, e.g. ``lam``, on the same episode).

Images are float ``[N, 3, H, W]`` in [0, 1]; ``backbone`` maps them to features ``[N, D]``
(frozen, eval mode; gradients flow to the inputs only). The defaults are the authors' settings
at 84 px (16 px patch, 80 trigger steps, PGD 20 steps of 4/255 within 8/255, lam 1.5); where
ours differ is listed in :data:`DEVIATIONS`.

Units of the trigger. The authors' images are normalised with miniImageNet statistics
(:data:`MINIIMAGENET_MEAN`, :data:`MINIIMAGENET_STD`); their trigger starts at 0 and moves by
0.02 per step in those units. In [0, 1] pixels that is a start at the miniImageNet mean colour
(0.472, 0.453, 0.410) and steps of 0.02 x the miniImageNet std, (0.0055, 0.0054, 0.0057) per
channel (:data:`TRIGGER_STEP`); the patch here lives in pixels and uses exactly those values.
Our backbone normalises with ImageNet statistics inside, so in its own units the start is
(-0.056, -0.012, 0.018) and the step (0.024, 0.024, 0.025).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..evaluation.few_shot import episode_rates, extract_features, query_accuracy
from ..fidelity import Deviation
from ..training.cosine_head import finetune_cosine_classifiers
from . import triggers

_REPO = "thinwayliu/FLBA-Backdoor@d57475f"
_BP = "core/model/finetuning/baseline_plus.py"

#: The normalisation of the authors' images, miniImageNet's per-channel mean and std
#: (thinwayliu/FLBA-Backdoor@d57475f core/data/dataloader.py:12-13).
MINIIMAGENET_MEAN = (120.39586422 / 255, 115.59361427 / 255, 104.54012653 / 255)
MINIIMAGENET_STD = (70.68188272 / 255, 68.27635443 / 255, 72.54505529 / 255)

#: The authors' trigger step, 0.02 in their normalised units, in [0, 1] pixel units per channel.
TRIGGER_STEP = tuple(0.02 * s for s in MINIIMAGENET_STD)

#: The three FLBA variants of the chapter: which support images receive their perturbation.
VARIANTS = ("full", "attractive_only", "repulsive_only")

DEVIATIONS = (
    Deviation(
        item="which support images are attracted",
        authors=f"the first five support images, support_img[:5], get the attractive and the "
        f"rest the repulsive perturbation ({_REPO} {_BP}:1016-1021, 1072); the support set is "
        "class-major with the target as class 0 (core/model/abstract_model.py:66-85, "
        f"{_BP}:988). In 5-way 5-shot that is the target class's five images; in 5-way 1-shot "
        "(run_test_FLBA.py:19) it is every support image, so all five are attracted and none "
        "is repelled",
        ours="by label: the target class's images are attracted, all others repelled, in "
        "every shot setting",
        why="it is the method the paper describes; the slice equals it only at 5 shots",
        claims=("flba-high-asr-stealthy", "both-perturbations-contribute"),
        where=(
            "backdoorbook.attacks.flba.flba_perturb",
            "backdoorbook.attacks.flba.flba_variants",
            "backdoorbook.attacks.flba.flba_rates",
        ),
    ),
    Deviation(
        item="the trigger behind mu",
        authors="mu is the mean of the features of the last forward pass of the trigger "
        "optimisation, i.e. of the trigger before its 80th update "
        f"({_REPO} {_BP}:1108-1119, 1025)",
        ours="mu is the mean feature of the support set carrying the final patch, the one the "
        "queries carry",
        why="the two patches differ by one signed step (at most 0.0057 per pixel)",
        claims=("flba-high-asr-stealthy", "both-perturbations-contribute"),
        where=("backdoorbook.attacks.flba.flba_perturb",),
    ),
    Deviation(
        item="BadNets: which support images are poisoned",
        authors="the first round(0.2 x 50) = 10 images of every class, the target class "
        f"included, relabelled to the target ({_REPO} {_BP}:146-153, 179-186); the shot count "
        "is hard-coded to 50, so the committed function runs only on 50-shot episodes, and "
        "the rule round(0.2 K) would poison no image at K = 1 and one per class at K = 5",
        ours="round(r x #non-target) (at least one) randomly chosen non-target images, "
        "r = 0.25 and 0.5, relabelled to the target",
        why="the authors' rule poisons nothing in 1-shot; fractions of the non-target images "
        "poison at least one image in every setting and let the fraction vary",
        claims=(
            "badnets-asr-rises-1-shot",
            "badnets-asr-rises-5-shot",
            "badnets-accuracy-falls-1-shot",
            "badnets-accuracy-falls-5-shot",
        ),
        where=("backdoorbook.attacks.flba.badnets_support",),
    ),
)


def apply_patch(images: torch.Tensor, patch: torch.Tensor) -> torch.Tensor:
    """Paste ``patch`` ``[3, s, s]`` (in [0, 1]) into the bottom-right corner of every image."""
    _, _, h, w = images.shape
    return triggers.stamp(images, patch, h - patch.shape[1], w - patch.shape[2])


def feature_gap(backbone: nn.Module, images: torch.Tensor, patch: torch.Tensor) -> float:
    """``1 - mean cos(f(patched), f(clean))`` over ``images``: 0 when the patch changes nothing."""
    with torch.no_grad():
        return (
            1.0
            - F.cosine_similarity(backbone(apply_patch(images, patch)), backbone(images), dim=1)
            .mean()
            .item()
        )


def _frozen(backbone: nn.Module) -> None:
    if backbone.training:
        raise ValueError(
            "put the backbone in eval mode (batch-norm statistics must not follow the attack)"
        )


def optimise_trigger(
    backbone: nn.Module,
    images: torch.Tensor,
    *,
    size: int = 16,
    steps: int = 80,
    step_size: float | Sequence[float] = TRIGGER_STEP,
    start: Sequence[float] = MINIIMAGENET_MEAN,
) -> torch.Tensor:
    """FLBA step 1: the bottom-right patch ``[3, size, size]`` in [0, 1] minimising
    cos(f(patched), f(clean)).

    The patch starts as the flat colour ``start`` (the authors' 0 in miniImageNet-normalised
    units) and takes ``steps`` signed-gradient descent steps of ``step_size`` ([0, 1] pixel
    units, one value or one per channel) on the mean cosine similarity over ``images`` (the
    support set). The patch itself is not clipped: it is clipped to [0, 1] when pasted, so a
    pixel that reaches the edge of [0, 1] gets no gradient and stays there. Returns the pasted
    (clipped) patch.
    """
    _frozen(backbone)
    channels = images.shape[1] if images.ndim == 4 else 0
    if images.ndim != 4 or not 1 <= size <= min(images.shape[2:]):
        raise ValueError(
            f"need images [N, C, H, W] at least {size} px wide, got {tuple(images.shape)}"
        )
    step = torch.as_tensor(step_size, dtype=images.dtype).flatten()
    colour = torch.as_tensor(start, dtype=images.dtype).flatten()
    if steps < 0 or (step <= 0).any() or len(step) not in (1, channels):
        raise ValueError(
            f"need steps >= 0 and one positive step_size or one per channel, got {steps}, "
            f"{step_size}"
        )
    if len(colour) != channels or (colour < 0).any() or (colour > 1).any():
        raise ValueError(f"start needs one value in [0, 1] per channel, got {start}")
    device = images.device
    step = step.to(device).view(-1, 1, 1)
    patch = colour.to(device).view(-1, 1, 1).expand(channels, size, size).clone()
    with torch.no_grad():
        clean = backbone(images)
    for _ in range(steps):
        patch.requires_grad_(True)
        patched = apply_patch(images, patch.clamp(0, 1))
        similarity = F.cosine_similarity(backbone(patched), clean, dim=1).mean()
        (grad,) = torch.autograd.grad(similarity, patch)
        patch = patch.detach() - step * grad.sign()
    return patch.detach().clamp(0, 1)


def flba_perturb(
    backbone: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    target: int,
    patch: torch.Tensor,
    *,
    eps: float = 8 / 255,
    step_size: float = 4 / 255,
    steps: int = 20,
    lam: float = 1.5,
) -> torch.Tensor:
    """FLBA step 2: attractive (label ``target``) and repulsive (other labels) PGD perturbations.

    Returns perturbed support images ``[N, C, H, W]`` with ``|x' - x| <= eps`` and values in [0, 1];
    labels are unchanged. Each image's objective depends only on that image (``mu`` is computed
    once, beforehand), so the attractive-only and repulsive-only ablations are the full result
    restricted to one group (see :func:`flba_variants`).
    """
    _frozen(backbone)
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    if eps < 0 or step_size <= 0 or steps < 0:
        raise ValueError(
            f"need eps >= 0, step_size > 0, steps >= 0, got {eps}, {step_size}, {steps}"
        )
    with torch.no_grad():
        mu = backbone(apply_patch(images, patch)).mean(0, keepdim=True)
        clean = backbone(images)
    sign = torch.where(labels.to(images.device) == target, 1.0, -1.0)
    adv = images.clone()
    for _ in range(steps):
        adv.requires_grad_(True)
        features = backbone(adv)
        objective = (
            sign * F.cosine_similarity(features, mu, dim=1)
            + lam * F.cosine_similarity(features, clean, dim=1)
        ).sum()
        (grad,) = torch.autograd.grad(objective, adv)
        adv = adv.detach() + step_size * grad.sign()
        adv = (images + (adv - images).clamp(-eps, eps)).clamp(0, 1)
    return adv.detach()


def flba_variants(
    clean: torch.Tensor, perturbed: torch.Tensor, labels: torch.Tensor, target: int
) -> dict[str, torch.Tensor]:
    """Support sets of the full attack and its two ablations from one :func:`flba_perturb`
    result."""
    is_target = (labels == target).to(clean.device)[:, None, None, None]
    return {
        "full": perturbed,
        "attractive_only": torch.where(is_target, perturbed, clean),
        "repulsive_only": torch.where(is_target, clean, perturbed),
    }


@dataclass(frozen=True)
class PoisonedSupport:
    """Dirty-label support set: images, labels (poisoned ones set to the target), and which were
    poisoned."""

    images: torch.Tensor
    labels: torch.Tensor
    poisoned: torch.Tensor  # bool [N]


def badnets_support(
    images: torch.Tensor,
    labels: torch.Tensor,
    target: int,
    *,
    rate: float,
    size: int = 16,
    seed: int = 0,
) -> PoisonedSupport:
    """BadNets-style support poisoning: stamp :func:`badnets_trigger` on
    ``round(rate * #non-target)`` (at least one) randomly chosen non-target support images and
    relabel them ``target``."""
    if not 0 < rate <= 1:
        raise ValueError(f"rate must lie in (0, 1], got {rate}")
    candidates = (labels != target).nonzero().flatten()
    if len(candidates) == 0:
        raise ValueError(f"every support label is the target {target}; nothing to poison")
    count = max(1, round(rate * len(candidates)))
    chosen = candidates[
        torch.randperm(len(candidates), generator=torch.Generator().manual_seed(seed))[:count]
    ]
    poisoned = torch.zeros(len(labels), dtype=torch.bool)
    poisoned[chosen] = True
    out = images.clone()
    out[chosen.to(images.device)] = badnets_trigger(images[chosen.to(images.device)], size)
    new_labels = labels.clone()
    new_labels[chosen] = target
    return PoisonedSupport(out, new_labels, poisoned)


def badnets_trigger(images: torch.Tensor, size: int = 16) -> torch.Tensor:
    """The baseline's trigger: a solid white ``size`` px square flush with the bottom-right corner
    (pixel value 1 in every channel; the authors' 16 px square at 84 px)."""
    return apply_patch(images, torch.ones(images.shape[1], size, size))


@dataclass(frozen=True)
class IntactAccuracy:
    """A BadNets head's clean accuracy on the classes that keep an unpoisoned support image.

    Attributes:
        accuracy: the poisoned head's accuracy (%) on those classes' clean queries.
        clean_accuracy: the clean head's accuracy (%) on the same queries (the paired control).
        classes: how many classes keep an unpoisoned support image (the target always does).
    """

    accuracy: float
    clean_accuracy: float
    classes: int


@dataclass
class EpisodeOutcome:
    """One episode's results and the attack's ingredients (for figures and further analysis).

    Attributes:
        rates: ``condition -> (clean accuracy %, ASR %)``.
        intact: for each BadNets condition, its :class:`IntactAccuracy` (in 1-shot, a poisoned
            image is its class's only example, so that class's queries have no correctly
            labelled support left to match).
        patch, support, perturbed, support_labels: the optimised FLBA patch, the clean and the
            FLBA-perturbed support images, and their labels.
    """

    rates: dict[str, tuple[float, float]]
    intact: dict[str, IntactAccuracy]
    patch: torch.Tensor
    support: torch.Tensor
    perturbed: torch.Tensor
    support_labels: torch.Tensor


@dataclass(frozen=True)
class FLBASettings:
    """The attack and fine-tuning settings of one episode (defaults: the authors' values at 84 px,
    except ``badnets_rates``, see :data:`DEVIATIONS`).

    Attributes:
        target: the attacker's target, an episode-local class index.
        patch_size: side of the FLBA patch and of the BadNets square (px, bottom-right).
        trigger_steps, trigger_step_size: the patch's signed-gradient optimisation (per-channel
            steps in [0, 1] pixel units; the authors' is :data:`TRIGGER_STEP`).
        eps, pgd_step_size, pgd_steps, lam: the attractive / repulsive PGD (``lam`` weighs the
            stay-close term).
        badnets_rates: fractions of non-target support images stamped and relabelled by the
            baseline.
        finetune_epochs, finetune_batch_size, finetune_lr: the victim's Baseline++ fine-tuning.
    """

    target: int = 0
    patch_size: int = 16
    trigger_steps: int = 80
    trigger_step_size: tuple[float, ...] = TRIGGER_STEP
    eps: float = 8 / 255
    pgd_step_size: float = 4 / 255
    pgd_steps: int = 20
    lam: float = 1.5
    badnets_rates: tuple[float, ...] = (0.25, 0.5)
    finetune_epochs: int = 100
    finetune_batch_size: int = 4
    finetune_lr: float = 1e-2


def attack_episode(
    backbone: nn.Module,
    support: torch.Tensor,
    support_labels: torch.Tensor,
    query: torch.Tensor,
    query_labels: torch.Tensor,
    settings: FLBASettings = FLBASettings(),
    *,
    seed: int = 0,
) -> EpisodeOutcome:
    """Fine-tune a Baseline++ head on the clean, BadNets-poisoned and FLBA support sets of one
    episode.

    Conditions: ``clean`` (the clean head, ASR under the FLBA trigger), ``badnets_0`` (the same
    clean head under the white square: poison rate 0), ``badnets_<rate>`` (ASR under the white
    square), and the :data:`VARIANTS` of FLBA (ASR under the optimised patch). Every head starts
    from the same head initialisation and batch order (``seed``). Support and query images are
    ``[S, 3, H, W]`` / ``[Q, 3, H, W]`` in [0, 1], labels episode-local 0..N-1.
    """
    c = settings
    n_way = int(support_labels.max()) + 1
    patch = optimise_trigger(
        backbone,
        support,
        size=c.patch_size,
        steps=c.trigger_steps,
        step_size=c.trigger_step_size,
    )
    flba_queries = apply_patch(query, patch)
    badnets_queries = badnets_trigger(query, c.patch_size)
    supports = {"clean": (support, support_labels)}
    poisoned = {
        f"badnets_{rate:g}": badnets_support(
            support, support_labels, c.target, rate=rate, size=c.patch_size, seed=seed
        )
        for rate in c.badnets_rates
    }
    supports |= {name: (p.images, p.labels) for name, p in poisoned.items()}
    perturbed = _perturb(backbone, support, support_labels, patch, c)
    for name, images in flba_variants(support, perturbed, support_labels, c.target).items():
        supports["flba" if name == "full" else f"flba_{name}"] = (images, support_labels)
    heads = dict(zip(supports, _finetune(backbone, list(supports.values()), n_way, c, seed)))
    query_features = extract_features(backbone, query)
    triggered = {
        "flba": extract_features(backbone, flba_queries),
        "badnets": extract_features(backbone, badnets_queries),
    }

    def scored(head, trigger):
        return episode_rates(head, query_features, query_labels, triggered[trigger], c.target)

    rates = {
        "clean": scored(heads["clean"], "flba"),
        "badnets_0": scored(heads["clean"], "badnets"),
    }
    rates |= {
        name: scored(head, "badnets" if name.startswith("badnets") else "flba")
        for name, head in heads.items()
        if name != "clean"
    }
    intact = {}
    for name, p in poisoned.items():
        classes = p.labels[~p.poisoned].unique()
        intact[name] = IntactAccuracy(
            *(
                query_accuracy(heads[h], query_features, query_labels, classes)
                for h in (name, "clean")
            ),
            classes=len(classes),
        )
    return EpisodeOutcome(rates, intact, patch, support, perturbed, support_labels)


def _perturb(backbone, support, labels, patch, c: FLBASettings) -> torch.Tensor:
    return flba_perturb(
        backbone,
        support,
        labels,
        c.target,
        patch,
        eps=c.eps,
        step_size=c.pgd_step_size,
        steps=c.pgd_steps,
        lam=c.lam,
    )


def _finetune(backbone, supports, n_way: int, c: FLBASettings, seed: int):
    """One Baseline++ head per ``(images, labels)`` support set, all from one seeded start."""
    features = torch.stack([extract_features(backbone, images) for images, _ in supports])
    labels = torch.stack([labels for _, labels in supports])
    return finetune_cosine_classifiers(
        features,
        labels,
        n_way,
        epochs=c.finetune_epochs,
        batch_size=c.finetune_batch_size,
        lr=c.finetune_lr,
        seed=seed,
    )


def flba_rates(
    backbone: nn.Module,
    support: torch.Tensor,
    support_labels: torch.Tensor,
    query: torch.Tensor,
    query_labels: torch.Tensor,
    patch: torch.Tensor,
    settings: FLBASettings = FLBASettings(),
    *,
    seed: int = 0,
) -> tuple[float, float]:
    """``(clean accuracy %, ASR %)`` of the full FLBA with a given ``patch`` on one episode.

    The support set is perturbed under ``settings`` (``eps``, the PGD steps, ``lam``) and the head
    fine-tuned from ``seed``, as in :func:`attack_episode`; with the same patch, settings and seed
    the two agree, so one can vary a setting of the perturbation on the episodes of a run.
    """
    n_way = int(support_labels.max()) + 1
    perturbed = _perturb(backbone, support, support_labels, patch, settings)
    (head,) = _finetune(backbone, [(perturbed, support_labels)], n_way, settings, seed)
    return episode_rates(
        head,
        extract_features(backbone, query),
        query_labels,
        extract_features(backbone, apply_patch(query, patch)),
        settings.target,
    )
