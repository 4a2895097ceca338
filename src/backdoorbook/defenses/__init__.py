"""Backdoor defenses, one module per method."""

from .evaluation import backdoor_metrics, psnr
from .zip import (BlockDownsample, Grayscale, sample_prior, timestep_schedule, transform_only, zip_operators,
                  zip_purify)

__all__ = ["backdoor_metrics", "psnr", "BlockDownsample", "Grayscale", "sample_prior", "timestep_schedule", "transform_only", "zip_operators", "zip_purify"]
