"""Profiles of chapter 5 (FLBA, backdoors in few-shot fine-tuning on miniImageNet)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from ...attacks.flba import FLBASettings


@dataclass(frozen=True)
class Profile:
    """Chapter 5's settings.

    Attributes:
        backbone_artifact: the shipped Conv-4 pre-trained on the 64 base classes (42 px).
        n_way, shots, n_query: episodes are ``n_way``-way, each K in ``shots``, ``n_query`` queries
            per class.
        episodes: episodes per shot setting (the same seeded episodes for every condition).
        attack: the attack and fine-tuning settings of every episode.
        threads: torch threads (``None``: every core).

    ``paper`` uses the authors' attack settings (600 episodes, 80 trigger steps of 0.0045,
    PGD 20 x 4/255); ``ci`` takes fewer, larger trigger steps (the same total travel) and
    10 PGD steps of 2/255. Both use the shipped 42 px Conv-4 (no 84 px ResNet backbone is shipped).
    """

    backbone_artifact: str
    n_way: int
    shots: tuple[int, ...]
    n_query: int
    episodes: int
    attack: FLBASettings
    threads: int | None


CI = Profile(
    backbone_artifact="flba_conv4_miniimagenet42",  # the project's Conv-4 at 42 px
    n_way=5,  # the paper's 5-way episodes
    shots=(1, 5),  # the paper's 1-shot and 5-shot
    n_query=15,  # the paper's 15 queries per class
    episodes=40,  # fits the CPU budget; the paper runs 600
    attack=FLBASettings(
        target=0,  # episode-local class 0: a random novel class per episode
        patch_size=8,  # 3.6 % of a 42 px image, the share of the paper's 16 px at 84 px
        trigger_steps=30,  # fewer, larger steps than the paper's 80 ...
        trigger_step_size=0.012,  # ... with the same total travel
        eps=8 / 255,  # the paper's budget
        pgd_steps=10,  # half the paper's 20 ...
        pgd_step_size=2 / 255,  # ... at half the step
        lam=1.5,  # the paper's stay-close weight
        badnets_rates=(0.25, 0.5),  # a quarter and half of the non-target support images
        finetune_epochs=100,  # the authors' 100 passes
        finetune_batch_size=4,  # the authors' batch
        finetune_lr=1e-2,  # the authors' Adam learning rate
    ),
    threads=1,  # episodes are small; one thread of the shared machine is faster
)
PAPER = replace(
    CI,
    episodes=600,
    attack=replace(
        CI.attack, trigger_steps=80, trigger_step_size=0.0045, pgd_steps=20, pgd_step_size=4 / 255
    ),
    threads=None,
)
PROFILES = {"ci": CI, "paper": PAPER}
