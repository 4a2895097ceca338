"""Profiles of chapter 4 (backdoors in a miniature CLIP; CleanCLIP, TA-Cleaner, UBT).

``ci`` loads the shipped clean model; ``paper`` pre-trains it in the chapter at a larger scale;
``smoke`` takes the ``paper`` path (pre-training here included) at toy sizes, so that CI runs
the code ``paper`` runs.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Profile:
    """Chapter 4's settings.

    Attributes:
        clean_artifact: the shipped clean pre-trained mini-CLIP (``None``: pre-train it in the
            chapter for ``clean_epochs`` on ``pretrain_cifar_per_class`` +
            ``pretrain_mini_per_class`` pairs per class).
        clean_epochs, pretrain_cifar_per_class, pretrain_mini_per_class: that pre-training (when
            done here; the per-class counts also define the pool the fine-tuning and defense sets
            are drawn from).
        test_cifar_per_class, test_mini_per_class: zero-shot test images per class (110 classes).
        target_class: the attacker's target class name.
        attacks: attacks of :data:`backdoorbook.attacks.clip_poison.CLIP_ATTACKS` to run.
        poison_set_pairs: pairs of the (continued) poisoned pre-training set, of which
            ``poison_count`` are poisoned.
        poison_epochs, poison_lr: that training (the clean control gets the same, without poison).
        defense_pairs: clean pairs the defender fine-tunes on (disjoint from the poisoned set).
        defense_epochs, defense_lr: every defense's fine-tuning. batch_size: all contrastive
            training.
        badclip_steps, badclip_lr, badclip_batch_size, badclip_triplet_weight, badclip_margin,
            badclip_aug_prob: the BadCLIP patch optimisation
            (:func:`backdoorbook.attacks.clip_poison.optimise_badclip_patch`).
        ta_subset_fraction, ta_subcaption_weight, ta_ablation_subset_fraction: TA-Cleaner and its
            ablation.
        ubt_suspects, ubt_overfit_epochs, ubt_focus_fraction, ubt_tokens, ubt_forget_weight: UBT
            (``ubt_tokens``: localised tokens per caption; the ablation unlearns whole captions).
        ablation_attack: the attack the three ablations run on.
        plot_images: test images per embedding plot. threads: torch threads (``None``: every core).
    """

    clean_artifact: str | None
    clean_epochs: int
    pretrain_cifar_per_class: int
    pretrain_mini_per_class: int
    test_cifar_per_class: int
    test_mini_per_class: int
    target_class: str
    attacks: tuple[str, ...]
    poison_set_pairs: int
    poison_count: int
    poison_epochs: int
    poison_lr: float
    defense_pairs: int
    defense_epochs: int
    defense_lr: float
    batch_size: int
    badclip_steps: int
    badclip_lr: float
    badclip_batch_size: int
    badclip_triplet_weight: float
    badclip_margin: float
    badclip_aug_prob: float
    ta_subset_fraction: float
    ta_subcaption_weight: float
    ta_ablation_subset_fraction: float
    ubt_suspects: int
    ubt_overfit_epochs: int
    ubt_focus_fraction: float
    ubt_tokens: int
    ubt_forget_weight: float
    ablation_attack: str
    plot_images: int
    threads: int | None

    def defense_settings(self, name: str, seed: int) -> dict:
        """Keyword settings of defense ``name`` (a :data:`backdoorbook.defenses.registry.DEFENSES`
        key)."""
        common = {
            "epochs": self.defense_epochs,
            "batch_size": self.batch_size,
            "lr": self.defense_lr,
            "seed": seed,
            "progress": False,
        }
        specific = {
            "none": {},
            "cleanclip": {"inmodal_weight": 1.0},
            "ta_cleaner": {
                "subset_fraction": self.ta_subset_fraction,
                "subcaption_weight": self.ta_subcaption_weight,
            },
            "ubt": {
                "n_suspects": self.ubt_suspects,
                "overfit_epochs": self.ubt_overfit_epochs,
                "focus_fraction": self.ubt_focus_fraction,
                "forget_weight": self.ubt_forget_weight,
                "tokens_per_caption": self.ubt_tokens,
            },
        }
        return {} if name == "none" else {**common, **specific[name]}


CI = Profile(
    clean_artifact="clip_mini_clean_32px",  # pre-training from scratch exceeds the chapter's budget
    clean_epochs=50,
    pretrain_cifar_per_class=2000,  # the pool the continued-training and defense sets come from
    pretrain_mini_per_class=80,  # all miniImageNet training images of a class but the 20 test ones
    test_cifar_per_class=100,
    test_mini_per_class=20,
    target_class="hotdog",  # a miniImageNet class with no CIFAR-10 look-alike
    attacks=("badnets", "blended", "sig", "wanet", "badclip"),  # the BadCLIP protocol's triggers
    poison_set_pairs=3000,
    poison_count=150,  # 5 % of the continued-training pairs
    poison_epochs=5,
    poison_lr=2e-3,
    defense_pairs=1000,  # the defender's small clean set
    defense_epochs=5,
    defense_lr=1e-3,
    batch_size=128,
    badclip_steps=400,  # the authors run about 7,800 (50 epochs of 156 batches)
    badclip_lr=0.01,  # larger than the authors' 1e-3 for twenty times fewer steps
    badclip_batch_size=64,  # the authors' batch
    badclip_triplet_weight=1.0,  # our choice: the authors' run name that sets it is not known
    badclip_margin=1.0,  # TripletMarginLoss's margin when the run name sets none
    badclip_aug_prob=0.5,  # the authors' README: a step's batch is its AutoAugment view with p 0.5
    ta_subset_fraction=0.5,  # our choice: the paper leaves it open
    ta_subcaption_weight=1.0,  # our choice: the paper leaves it open
    ta_ablation_subset_fraction=1.0,  # the ablation: sub-captions for every pair
    ubt_suspects=32,
    ubt_overfit_epochs=2,
    ubt_focus_fraction=0.5,
    ubt_tokens=2,
    ubt_forget_weight=1.0,
    ablation_attack="badclip",  # the attack the defenses are compared on
    plot_images=300,
    threads=1,  # the small towers run faster on one thread of the shared machine
)
PAPER = replace(
    CI,
    clean_artifact=None,
    clean_epochs=100,
    pretrain_cifar_per_class=5000,
    test_cifar_per_class=1000,
    poison_set_pairs=20000,
    poison_count=200,
    poison_epochs=10,
    defense_pairs=10000,
    defense_epochs=10,
    batch_size=256,
    badclip_steps=7800,  # the authors' 50 epochs of 156 batches of 64
    badclip_lr=1e-3,  # the authors' Adam default
    ubt_suspects=200,
    ubt_overfit_epochs=5,
    plot_images=1000,
    threads=None,
)
SMOKE = replace(  # the paper path (pre-training here, every core) at toy sizes, for a quick check
    PAPER,
    clean_epochs=1,  # one pass: the pre-training code runs, the model stays weak
    pretrain_cifar_per_class=30,  # a 700-pair pool ...
    pretrain_mini_per_class=4,  # ... with four images of the target class
    test_cifar_per_class=10,  # 300 test images ...
    test_mini_per_class=2,  # ... two of them of the target
    poison_set_pairs=400,
    poison_count=20,  # 5 % of the continued-training pairs, as under ci
    poison_epochs=1,
    defense_pairs=200,  # pool minus the continued-training set leaves room for it
    defense_epochs=1,
    batch_size=64,  # several steps per epoch on the small sets
    badclip_steps=5,
    ubt_suspects=8,
    ubt_overfit_epochs=1,
    plot_images=100,
    threads=1,  # a thread setting, not a code path: every core of this busy machine ran 8x slower
)
PROFILES = {"ci": CI, "paper": PAPER, "smoke": SMOKE}
