"""A small 32×32 DDPM prior (diffusers ``UNet2DModel`` + ``DDPMScheduler``) and its loaders.

The ZIP chapter needs an unconditional diffusion prior on 32×32 images. ZIP (Shi et al.,
"Black-box Backdoor Defense via Zero-shot Image Purification", NeurIPS 2023, arXiv
2303.12175) uses a pretrained ImageNet ADM; no diffusion weights could be mirrored here, so
the project trains a miniature DDPM (Ho et al., "Denoising Diffusion Probabilistic Models",
NeurIPS 2020, arXiv 2006.11239) itself with :mod:`backdoorbook.recipes.ddpm_prior` and ships
it as an artifact (the ZIP profile names it).

The noise schedule is the one of DDPM and of ``google/ddpm-cifar10-32``: T = 1000 steps,
linear betas from 1e-4 to 0.02. The network predicts the noise ``eps`` of ``x_t`` given ``t``;
images are ``[N, 3, 32, 32]`` in [-1, 1] inside the model (callers convert from [0, 1]).

Two loaders: :func:`load_ddpm_artifact` (the project's prior, sha256-verified) and
:func:`load_ddpm_checkpoint` (a diffusers DDPM directory, e.g. a real ``google/ddpm-cifar10-32``
snapshot, either a pipeline folder with ``unet/`` and ``scheduler/`` or a bare UNet folder).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from diffusers import DDPMScheduler, UNet2DModel

from ..artifacts import ARTIFACTS_DIR, artifact_provenance, load_artifact


@dataclass(frozen=True)
class DDPMConfig:
    """Architecture of the miniature UNet (no attention; ~2.5 M parameters with the defaults)."""

    sample_size: int = 32
    block_out_channels: tuple[int, ...] = (32, 64, 128)
    layers_per_block: int = 1
    norm_num_groups: int = 8

    def to_dict(self) -> dict:
        return {**asdict(self), "block_out_channels": list(self.block_out_channels)}


def ddpm_unet(config: DDPMConfig = DDPMConfig()) -> UNet2DModel:
    """A randomly initialised noise-prediction UNet for ``[N, 3, S, S]`` images in [-1, 1]."""
    if config.sample_size % 2 ** (len(config.block_out_channels) - 1):
        raise ValueError(
            f"sample_size {config.sample_size} is not divisible by the UNet's "
            f"{len(config.block_out_channels) - 1} downsamplings"
        )
    if any(c % config.norm_num_groups for c in config.block_out_channels):
        raise ValueError(
            f"block_out_channels {config.block_out_channels} must be multiples of "
            f"norm_num_groups={config.norm_num_groups}"
        )
    levels = len(config.block_out_channels)
    return UNet2DModel(
        sample_size=config.sample_size,
        in_channels=3,
        out_channels=3,
        layers_per_block=config.layers_per_block,
        block_out_channels=tuple(config.block_out_channels),
        down_block_types=("DownBlock2D",) * levels,
        up_block_types=("UpBlock2D",) * levels,
        norm_num_groups=config.norm_num_groups,
    )


def ddpm_scheduler() -> DDPMScheduler:
    """DDPM's training schedule: T = 1000, linear betas 1e-4 … 0.02, epsilon prediction."""
    return DDPMScheduler(
        num_train_timesteps=1000,
        beta_start=1e-4,
        beta_end=0.02,
        beta_schedule="linear",
        prediction_type="epsilon",
    )


def load_ddpm_artifact(
    name: str, directory: Path = ARTIFACTS_DIR
) -> tuple[UNet2DModel, DDPMScheduler]:
    """The project's trained prior (weights sha256-verified), in eval mode on the CPU, as
    float32."""
    record = artifact_provenance(name, directory)
    config = DDPMConfig(
        **{
            **record["unet_config"],
            "block_out_channels": tuple(record["unet_config"]["block_out_channels"]),
        }
    )
    unet = ddpm_unet(config)
    unet.load_state_dict({k: v.float() for k, v in load_artifact(name, directory).items()})
    return unet.eval(), ddpm_scheduler()


def load_ddpm_checkpoint(directory: str | Path) -> tuple[UNet2DModel, DDPMScheduler]:
    """A diffusers DDPM checkpoint directory (local files only): ``(unet, scheduler)`` in eval mode.

    Accepts a pipeline folder (``unet/`` and ``scheduler/`` subfolders, as
    ``DDPMPipeline.save_pretrained`` writes) or a model folder with ``config.json`` and, optionally,
    ``scheduler_config.json`` (the layout of the ``google/ddpm-cifar10-32`` repository). Without a
    scheduler config, DDPM's default schedule is used.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"no diffusers checkpoint directory at {directory}")
    unet_dir = directory / "unet" if (directory / "unet" / "config.json").exists() else directory
    if not (unet_dir / "config.json").exists():
        raise FileNotFoundError(f"{directory} holds neither unet/config.json nor config.json")
    unet = UNet2DModel.from_pretrained(unet_dir, local_files_only=True)
    for candidate in (directory / "scheduler", directory):
        if (candidate / "scheduler_config.json").exists():
            return unet.eval(), DDPMScheduler.from_pretrained(candidate, local_files_only=True)
    return unet.eval(), ddpm_scheduler()
