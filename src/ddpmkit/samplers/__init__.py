"""Samplers: short functions of a denoiser, a grid of noise levels, starting noise and a generator."""

from ddpmkit.core.schedules import ReverseVariance
from ddpmkit.samplers.ancestral import ancestral, ddpm_ancestral
from ddpmkit.samplers.common import Sampler, SampleResult, SamplerRun, StepCallback
from ddpmkit.samplers.ddim import ddim, ddim_invert
from ddpmkit.samplers.dpm_solver import dpmpp_2m, dpmpp_3m
from ddpmkit.samplers.ode import edm_heun, ode_euler, ode_heun, ode_rk45
from ddpmkit.samplers.registry import SAMPLERS, sample
from ddpmkit.samplers.sde import annealed_langevin, euler_maruyama, predictor_corrector

__all__ = [
    "SAMPLERS",
    "ReverseVariance",
    "SampleResult",
    "Sampler",
    "SamplerRun",
    "StepCallback",
    "ancestral",
    "annealed_langevin",
    "ddim",
    "ddim_invert",
    "ddpm_ancestral",
    "dpmpp_2m",
    "dpmpp_3m",
    "edm_heun",
    "euler_maruyama",
    "ode_euler",
    "ode_heun",
    "ode_rk45",
    "predictor_corrector",
    "sample",
]
