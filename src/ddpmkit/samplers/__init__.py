"""Samplers: short functions of a denoiser, a schedule, a starting noise and a generator."""

from ddpmkit.samplers.ancestral import ReverseVariance, ddpm_ancestral, reverse_variance_table
from ddpmkit.samplers.common import SampleResult, clip_x0

__all__ = ["ReverseVariance", "SampleResult", "clip_x0", "ddpm_ancestral", "reverse_variance_table"]
