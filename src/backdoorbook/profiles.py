"""Per-chapter run profiles.

Each chapter has one frozen dataclass of sizes and settings, with two instances:

- ``ci``: the default; CPU with 2 cores, a few minutes per chapter (the book built in CI);
- ``paper``: closer to the paper's scale, meant for a GPU.

Notebooks never hard-code sizes: they call ``get_profile(chapter, profile)`` with the
``profile`` parameter papermill injects. Chapter issues add their dataclass and an entry in
:data:`PROFILES`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


class ProfileError(ValueError):
    """An unknown chapter or profile name."""


@dataclass(frozen=True)
class DataProfile:
    """Chapter 0 (the data): gallery size and the CIFAR-10 ResNet evaluation.

    Attributes:
        gallery_images: images shown per dataset in the gallery.
        resnet_test_images: CIFAR-10 test images the pretrained ResNets are scored on
            (``None``: the whole test split, 10,000 images).
        resnet_train_images: training images (evenly spaced) scored as a diagnostic.
        batch_size: evaluation batch size.
    """

    gallery_images: int
    resnet_test_images: int | None
    resnet_train_images: int
    batch_size: int


@dataclass(frozen=True)
class IBAProfile:
    """Chapter 3 (IBA on CamVid): resolution, network, poisoning and evaluation settings.

    Attributes:
        downsample: integer reduction of the 240x180 CamVid mirror (2: 120x90).
        width: first-stage channels of the small DeepLab.
        clean_artifact: name of the shipped clean pre-trained model (``None``: train it in the chapter).
        clean_epochs, clean_lr: the clean pre-training (AdamW, cosine schedule).
        poison_epochs, poison_lr, poison_batch_size: training of every compared model (clean
            control and attacked) on its training set, starting from the clean pre-trained weights.
        ship_compared_models: load the compared models from artifacts trained with exactly these
            settings by ``tools/train_iba_models.py`` (``False``: train them in the chapter).
        batch_size: batch size of the clean pre-training.
        poison_rates: fractions of the training set that are poisoned.
        trigger_size: side of the square trigger (pixels).
        margin: minimum trigger distance to the image border (pixels).
        nni_band: NNI's (L, U) band for the trigger-centre distance to the victim (pixels).
        prl_pixels: pixels relabelled by PRL per poisoned label map.
        min_victim_pixels: images with fewer victim pixels are neither poisoned nor tested for ASR.
        distance_bands: test-time (L, U) bands for the ASR-against-distance sweep (pixels).
    """

    downsample: int
    width: int
    clean_artifact: str | None
    clean_epochs: int
    clean_lr: float
    poison_epochs: int
    poison_lr: float
    poison_batch_size: int
    ship_compared_models: bool
    batch_size: int
    poison_rates: tuple[float, ...]
    trigger_size: int
    margin: int
    nni_band: tuple[float, float]
    prl_pixels: int
    min_victim_pixels: int
    distance_bands: tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class ZipProfile:
    """Chapter 2 (ZIP purification on CIFAR-10 / GTSRB): prior, victims and purification sizes.

    Attributes:
        prior_artifact: the shipped DDPM prior (``artifacts/<name>.safetensors``).
        victims: victim artifacts ``zip_victim_<dataset>_<attack>`` to evaluate.
        n_images: test images per dataset (non-target classes) scored under every defense;
            ZIP purifies each of them clean and triggered.
        n_sweep: triggered CIFAR-10 BadNets images purified per point of the s and λ sweeps.
        scale: ZIP's downsampling factor s; lam: the λ of the blend; steps: sampling steps.
        sweep_scales, sweep_lams: the values of s (at ``lam``) and λ (at ``scale``) swept.
        batch_size: purification batch size. grid_images: images per row of the figure grids.
        sample_images: unconditional samples drawn from the prior for the sample grid.
        throughput_images: images purified by the timed throughput measurement.
        threads: torch threads (``None``: every core). On the shared 2-core build machine one
            thread ran the UNet about 4× faster than two under load (2.7 s vs 10.4 s per batch of 48).
    """

    prior_artifact: str
    victims: tuple[str, ...]
    n_images: int
    n_sweep: int
    scale: int
    lam: float
    steps: int
    sweep_scales: tuple[int, ...]
    sweep_lams: tuple[float, ...]
    batch_size: int
    grid_images: int
    sample_images: int
    throughput_images: int
    threads: int | None


_ZIP_VICTIMS = ("zip_victim_cifar10_badnets", "zip_victim_cifar10_blended", "zip_victim_cifar10_wanet",
                "zip_victim_gtsrb_badnets")

@dataclass(frozen=True)
class TransferProfile:
    """Chapter 6 (transferability of adversarial examples on CIFAR-10).

    Attributes:
        pool: test images screened for ones every model classifies correctly.
        images: attacked images (the first ``images`` of the pool that all models get right).
        surrogates: depths of the pretrained ResNets used as single surrogates.
        ensemble: depths of the ResNets whose logits the ensemble surrogate averages.
        eps: L∞ budgets in units of 1/255.
        steps: attack iterations (FGSM: one).
        vmi_samples: VMI-FGSM neighbours per iteration (paper: 20).
        si_scales: SI-FGSM scale copies (paper: 5).
        admix_mixes, admix_scales: Admix's admixed images and scale copies (paper: 3 and 5).
        batch_size: evaluation batch size. grid_images: images per adversarial-example grid.
        threads: torch threads (``None``: every core). On the shared 2-core build machine one
            thread is several times faster than two, whose synchronisation stalls under load.
    """

    pool: int
    images: int
    surrogates: tuple[int, ...]
    ensemble: tuple[int, ...]
    eps: tuple[int, ...]
    steps: int
    vmi_samples: int
    si_scales: int
    admix_mixes: int
    admix_scales: int
    batch_size: int
    grid_images: int
    threads: int | None


@dataclass(frozen=True)
class BadSamProfile:
    """Chapter 1 (BadSAM on a miniature SAM, Weizmann Horse): model, split, adaptation and poisoning settings.

    Attributes:
        sam_config: ``backdoorbook.models.sam.SAM_CONFIGS`` key of the foundation model.
        checkpoint: path of a released SAM checkpoint (e.g. ``sam_vit_b_01ec64.pth`` with
            ``sam_config="vit_b"``); ``None``: the project's pre-trained ``mini_sam_camvid`` artifact.
        test_images: horse images held out for testing (the rest are the fine-tuning set).
        epochs, batch_size, lr: adapter fine-tuning (AdamW, cosine decay to zero).
        ship_adapted_models: load the adapted models from artifacts made with exactly these
            settings by ``tools/train_badsam_models.py`` (``False``: adapt them in the chapter).
        adapter_bottleneck: hidden width of each adapter.
        poison_rates: fractions of the fine-tuning set that carry the trigger.
        trigger_fraction: trigger side as a fraction of the image height (paper: 0.15).
        eval_batch_size: batch size for predictions. overlay_images: test images in the figures.
    """

    sam_config: str
    checkpoint: str | None
    test_images: int
    epochs: int
    batch_size: int
    lr: float
    ship_adapted_models: bool
    adapter_bottleneck: int
    poison_rates: tuple[float, ...]
    trigger_fraction: float
    eval_batch_size: int
    overlay_images: int


@dataclass(frozen=True)
class ClipDefenseProfile:
    """Chapter 4 (backdoors in a miniature CLIP; CleanCLIP, TA-Cleaner, UBT): data, attacks and defenses.

    Attributes:
        clean_artifact: the shipped clean pre-trained mini-CLIP (``None``: pre-train it in the chapter
            for ``clean_epochs`` on ``pretrain_cifar_per_class`` + ``pretrain_mini_per_class`` pairs per class).
        clean_epochs, pretrain_cifar_per_class, pretrain_mini_per_class: that pre-training (when done here;
            the per-class counts also define the pool the fine-tuning and defense sets are drawn from).
        test_cifar_per_class, test_mini_per_class: zero-shot test images per class (110 classes).
        target_class: the attacker's target class name.
        attacks: attacks of :data:`backdoorbook.attacks.clip_poison.CLIP_ATTACKS` to run.
        poison_set_pairs: pairs of the (continued) poisoned pre-training set, of which ``poison_count`` are poisoned.
        poison_epochs, poison_lr: that training (the clean control gets the same, without poison).
        defense_pairs: clean pairs the defender fine-tunes on (disjoint from the poisoned set).
        defense_epochs, defense_lr: every defense's fine-tuning. batch_size: all contrastive training.
        badclip_steps, badclip_image_weight: the BadCLIP patch optimisation.
        ta_subset_fraction, ta_subcaption_weight, ta_ablation_subset_fraction: TA-Cleaner and its ablation.
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
    badclip_image_weight: float
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


_CLIP_ATTACKS = ("badnets", "blended", "sig", "wanet", "badclip")

@dataclass(frozen=True)
class FLBAProfile:
    """Chapter 5 (FLBA, backdoors in few-shot fine-tuning on miniImageNet): episodes and attack settings.

    Attributes:
        backbone_artifact: the shipped Conv-4 pre-trained on the 64 base classes (42 px).
        n_way, shots, n_query: episodes are ``n_way``-way, each K in ``shots``, ``n_query`` queries per class.
        episodes: episodes per shot setting (the same seeded episodes for every condition).
        target: the attacker's target, an episode-local class index (classes are shuffled per episode).
        patch_size: side of the FLBA patch and the BadNets checkerboard (px, bottom-right).
        trigger_steps, trigger_step_size: the patch's signed-gradient optimisation ([0, 1] pixel units).
        eps, pgd_steps, pgd_step_size, lam: the attractive / repulsive PGD (lam weighs the stay-close term).
        badnets_rates: fractions of non-target support images stamped and relabelled in the baseline.
        finetune_epochs, finetune_batch_size, finetune_lr: Baseline++ fine-tuning (passes over the support set).
        threads: torch threads (``None``: every core).

    ``paper`` uses the authors' attack settings (600 episodes, 80 trigger steps of 0.0045, PGD 20 x 4/255);
    ``ci`` takes fewer, larger trigger steps (the same total travel) and 10 PGD steps of 2/255.
    Both use the shipped 42 px Conv-4 (no 84 px ResNet backbone is shipped).
    """

    backbone_artifact: str
    n_way: int
    shots: tuple[int, ...]
    n_query: int
    episodes: int
    target: int
    patch_size: int
    trigger_steps: int
    trigger_step_size: float
    eps: float
    pgd_steps: int
    pgd_step_size: float
    lam: float
    badnets_rates: tuple[float, ...]
    finetune_epochs: int
    finetune_batch_size: int
    finetune_lr: float
    threads: int | None


PROFILES: dict[str, dict[str, object]] = {
    "05_flba": {
        "ci": FLBAProfile(backbone_artifact="flba_conv4_miniimagenet42", n_way=5, shots=(1, 5), n_query=15, episodes=40,
                          target=0, patch_size=8, trigger_steps=30, trigger_step_size=0.012, eps=8 / 255, pgd_steps=10,
                          pgd_step_size=2 / 255, lam=1.5, badnets_rates=(0.25, 0.5), finetune_epochs=100,
                          finetune_batch_size=4, finetune_lr=1e-2, threads=1),
        "paper": FLBAProfile(backbone_artifact="flba_conv4_miniimagenet42", n_way=5, shots=(1, 5), n_query=15,
                             episodes=600, target=0, patch_size=8, trigger_steps=80, trigger_step_size=0.0045,
                             eps=8 / 255, pgd_steps=20, pgd_step_size=4 / 255, lam=1.5, badnets_rates=(0.25, 0.5),
                             finetune_epochs=100, finetune_batch_size=4, finetune_lr=1e-2, threads=None),
    },
    "04_clip_defenses": {
        "ci": ClipDefenseProfile(clean_artifact="clip_mini_clean_32px", clean_epochs=50, pretrain_cifar_per_class=2000,
                                 pretrain_mini_per_class=80, test_cifar_per_class=100, test_mini_per_class=20,
                                 target_class="hotdog", attacks=_CLIP_ATTACKS, poison_set_pairs=3000,
                                 poison_count=150, poison_epochs=5, poison_lr=2e-3, defense_pairs=1000,
                                 defense_epochs=5, defense_lr=1e-3, batch_size=128, badclip_steps=150,
                                 badclip_image_weight=1.0, ta_subset_fraction=0.5, ta_subcaption_weight=1.0,
                                 ta_ablation_subset_fraction=1.0, ubt_suspects=32, ubt_overfit_epochs=2,
                                 ubt_focus_fraction=0.5, ubt_tokens=2, ubt_forget_weight=1.0,
                                 ablation_attack="badclip", plot_images=300, threads=1),
        "paper": ClipDefenseProfile(clean_artifact=None, clean_epochs=100, pretrain_cifar_per_class=5000,
                                    pretrain_mini_per_class=80, test_cifar_per_class=1000, test_mini_per_class=20,
                                    target_class="hotdog", attacks=_CLIP_ATTACKS, poison_set_pairs=20000,
                                    poison_count=200, poison_epochs=10, poison_lr=2e-3, defense_pairs=10000,
                                    defense_epochs=10, defense_lr=1e-3, batch_size=256, badclip_steps=1000,
                                    badclip_image_weight=1.0, ta_subset_fraction=0.5, ta_subcaption_weight=1.0,
                                    ta_ablation_subset_fraction=1.0, ubt_suspects=200, ubt_overfit_epochs=5,
                                    ubt_focus_fraction=0.5, ubt_tokens=2, ubt_forget_weight=1.0,
                                    ablation_attack="badclip", plot_images=1000, threads=None),
    },
    "01_badsam": {
        "ci": BadSamProfile(sam_config="mini", checkpoint=None, test_images=96, epochs=60, batch_size=4, lr=1e-3,
                            ship_adapted_models=True, adapter_bottleneck=16, poison_rates=(0.01, 0.05, 0.10), trigger_fraction=0.15,
                            eval_batch_size=48, overlay_images=4),
        "paper": BadSamProfile(sam_config="mini", checkpoint=None, test_images=96, epochs=20, batch_size=2, lr=2e-4,
                               ship_adapted_models=False, adapter_bottleneck=16, poison_rates=(0.01, 0.05, 0.10), trigger_fraction=0.15,
                               eval_batch_size=48, overlay_images=8),
    },
    "06_transferability": {
        "ci": TransferProfile(pool=1000, images=64, surrogates=(20, 32), ensemble=(20, 32, 44), eps=(8, 16), steps=10,
                               vmi_samples=3, si_scales=3, admix_mixes=2, admix_scales=2, batch_size=500,
                               grid_images=6, threads=1),
        "paper": TransferProfile(pool=10000, images=1000, surrogates=(20, 32, 44, 56), ensemble=(20, 32, 44),
                                  eps=(8, 16), steps=10, vmi_samples=20, si_scales=5, admix_mixes=3, admix_scales=5,
                                  batch_size=1000, grid_images=8, threads=None),
    },
    "02_zip": {
        "ci": ZipProfile(prior_artifact="ddpm_cifar10", victims=_ZIP_VICTIMS, n_images=64, n_sweep=48, scale=2,
                         lam=10.0, steps=20, sweep_scales=(2, 4), sweep_lams=(1.0, 10.0, 100.0), batch_size=64,
                         grid_images=6, sample_images=16, throughput_images=32, threads=1),
        "paper": ZipProfile(prior_artifact="ddpm_cifar10", victims=_ZIP_VICTIMS, n_images=2000, n_sweep=1000,
                            scale=2, lam=10.0, steps=20, sweep_scales=(2, 4, 8), sweep_lams=(0.3, 1.0, 3.0, 10.0, 30.0,
                                                                                            100.0),
                            batch_size=250, grid_images=8, sample_images=64, throughput_images=1000, threads=None),
    },
    "03_iba": {
        "ci": IBAProfile(downsample=2, width=16, clean_artifact="iba_camvid_clean_w16_120x90", clean_epochs=40,
                         clean_lr=3e-3, poison_epochs=60, poison_lr=1e-3, poison_batch_size=8,
                         ship_compared_models=True, batch_size=32, poison_rates=(0.1, 0.2),
                         trigger_size=8, margin=4, nni_band=(5.0, 15.0), prl_pixels=500, min_victim_pixels=30,
                         distance_bands=((5, 10), (10, 20), (20, 30), (30, 45), (45, 70))),
        "paper": IBAProfile(downsample=1, width=32, clean_artifact=None, clean_epochs=120, clean_lr=3e-3,
                            poison_epochs=100, poison_lr=1e-3, poison_batch_size=8,
                            ship_compared_models=False, batch_size=16, poison_rates=(0.05, 0.1, 0.2),
                            trigger_size=16, margin=8, nni_band=(10.0, 30.0), prl_pixels=2000,
                            min_victim_pixels=120,
                            distance_bands=((10, 20), (20, 40), (40, 60), (60, 90), (90, 140))),
    },
    "00_data": {
        "ci": DataProfile(gallery_images=8, resnet_test_images=None, resnet_train_images=5000, batch_size=500),
        "paper": DataProfile(gallery_images=16, resnet_test_images=None, resnet_train_images=50000, batch_size=1000),
    },
}


def get_profile(chapter: str, name: str = "ci"):
    """Return the profile ``name`` of ``chapter``; unknown names raise :class:`ProfileError`."""
    if chapter not in PROFILES:
        raise ProfileError(f"unknown chapter {chapter!r}; chapters with profiles: {', '.join(sorted(PROFILES))}")
    profiles = PROFILES[chapter]
    if name not in profiles:
        raise ProfileError(
            f"unknown profile {name!r} for chapter {chapter!r}; valid profiles: {', '.join(sorted(profiles))}")
    return profiles[name]


def profile_as_dict(profile) -> dict:
    """The profile's fields, for the results record."""
    return asdict(profile)
