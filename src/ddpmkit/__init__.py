"""ddpmkit: denoising diffusion probabilistic models in PyTorch, in the papers' notation.

Glossary (code name: symbol, meaning):

- ``t``: the step, 0-based; row t of a table is the paper's step t + 1 (T = ``num_steps``).
- ``betas``: β_t, the variance of the step q(x_t|x_{t-1}) = N(√(1-β_t) x_{t-1}, β_t I).
- ``alphas``: α_t = 1 - β_t.  ``alpha_bar``: ᾱ_t = ∏_{s≤t} α_s, so q(x_t|x_0) = N(√ᾱ_t x_0, (1-ᾱ_t) I).
- ``x0``, ``x_t``, ``eps``: x_0 (data), x_t (noised), ε (the standard normal noise in x_t).
- ``x0_hat``, ``eps_hat``: a model's estimates of x_0 and ε; ``v`` = √ᾱ ε - √(1-ᾱ) x_0.
- ``posterior_variance``: β̃_t, the variance of q(x_{t-1}|x_t, x_0).
- ``sigma``: σ = √((1-ᾱ)/ᾱ), the noise level in variance-exploding coordinates x = x_t/√ᾱ.
- ``log_snr``: log(ᾱ/(1-ᾱ)) = -2 log σ.
- Denoiser: D(x; σ) ≈ E[x_0 | x], the one interface samplers use (``ddpmkit.core.denoisers``).

The public API: ``load`` a model folder and ``sample`` / ``inpaint`` / ``restore`` / ``edit`` /
``likelihood`` / ``export_diffusers`` with the `Model` it returns; ``train`` one; and the
building blocks (schedules, the forward process, parameterizations, denoisers, samplers on any
denoiser, losses, likelihood, guidance wrappers, inverse-problem solvers, networks, configs).
The names are imported on first use, so that ``import ddpmkit`` (and ``ddpmkit --help``) does not
load PyTorch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ddpmkit.api.companions import ClassifierReport, train_autoencoder, train_classifier
    from ddpmkit.api.model import Model, load
    from ddpmkit.api.quality import QualityReport
    from ddpmkit.api.training import train
    from ddpmkit.config.presets import PRESETS, QUICK_START
    from ddpmkit.config.schema import (
        DiffusionConfig,
        ModelConfig,
        RunConfig,
        SampleConfig,
        TrainConfig,
    )
    from ddpmkit.core.analytic import GaussianDenoiser
    from ddpmkit.core.denoisers import Denoiser, NetworkDenoiser
    from ddpmkit.core.forward import posterior_mean, posterior_variance, q_sample, q_step
    from ddpmkit.core.grids import build_grid, karras_sigmas
    from ddpmkit.core.parameterization import (
        eps_from_score,
        eps_from_v,
        eps_from_x0,
        score_from_eps,
        v_from_x0_eps,
        x0_from_eps,
        x0_from_score,
        x0_from_v,
    )
    from ddpmkit.core.randomness import PerSampleGenerator
    from ddpmkit.core.schedules import NoiseSchedule
    from ddpmkit.core.thresholding import ClippedDenoiser, DynamicThresholding
    from ddpmkit.data.config import DataConfig
    from ddpmkit.data.loading import load_data
    from ddpmkit.guidance import AutoGuidance, ClassifierFreeGuidance, ClassifierGuidance
    from ddpmkit.inverse import (
        Downsample,
        GaussianBlur,
        Mask,
        ddrm,
        dps,
        inpaint_replacement,
        pigdm,
        repaint,
        sdedit,
    )
    from ddpmkit.likelihood import (
        discretized_gaussian_log_likelihood,
        normal_kl,
        ode_bits_per_dim,
        ode_log_likelihood,
        variational_bound,
    )
    from ddpmkit.likelihood.report import NLLReport
    from ddpmkit.losses import HybridLoss, LossOutput, SimpleLoss, UniformTimesteps, min_snr_weight
    from ddpmkit.networks import UNet, UNetConfig
    from ddpmkit.outputs import to_images
    from ddpmkit.pipeline.restoration import Restoration
    from ddpmkit.samplers import (
        SAMPLERS,
        SampleResult,
        ancestral,
        annealed_langevin,
        ddim,
        ddim_invert,
        ddpm_ancestral,
        dpmpp_2m,
        dpmpp_3m,
        edm_heun,
        euler_maruyama,
        ode_euler,
        ode_heun,
        ode_rk45,
        predictor_corrector,
        sample,
    )
    from ddpmkit.training.autoencoder import AutoencoderReport
    from ddpmkit.training.loop import Trainer

__version__ = "0.1.0"

_HOMES = {
    "Model": "ddpmkit.api.model",
    "load": "ddpmkit.api.model",
    "train_autoencoder": "ddpmkit.api.companions",
    "train_classifier": "ddpmkit.api.companions",
    "ClassifierReport": "ddpmkit.api.companions",
    "AutoencoderReport": "ddpmkit.training.autoencoder",
    "QualityReport": "ddpmkit.api.quality",
    "train": "ddpmkit.api.training",
    "to_images": "ddpmkit.outputs",
    "Restoration": "ddpmkit.pipeline.restoration",
    "NLLReport": "ddpmkit.likelihood.report",
    "RunConfig": "ddpmkit.config.schema",
    "SampleConfig": "ddpmkit.config.schema",
    "TrainConfig": "ddpmkit.config.schema",
    "DiffusionConfig": "ddpmkit.config.schema",
    "ModelConfig": "ddpmkit.config.schema",
    "DataConfig": "ddpmkit.data.config",
    "PRESETS": "ddpmkit.config.presets",
    "QUICK_START": "ddpmkit.config.presets",
    "NoiseSchedule": "ddpmkit.core.schedules",
    "q_sample": "ddpmkit.core.forward",
    "q_step": "ddpmkit.core.forward",
    "posterior_mean": "ddpmkit.core.forward",
    "posterior_variance": "ddpmkit.core.forward",
    "build_grid": "ddpmkit.core.grids",
    "karras_sigmas": "ddpmkit.core.grids",
    "x0_from_eps": "ddpmkit.core.parameterization",
    "eps_from_x0": "ddpmkit.core.parameterization",
    "v_from_x0_eps": "ddpmkit.core.parameterization",
    "x0_from_v": "ddpmkit.core.parameterization",
    "eps_from_v": "ddpmkit.core.parameterization",
    "score_from_eps": "ddpmkit.core.parameterization",
    "eps_from_score": "ddpmkit.core.parameterization",
    "x0_from_score": "ddpmkit.core.parameterization",
    "Denoiser": "ddpmkit.core.denoisers",
    "NetworkDenoiser": "ddpmkit.core.denoisers",
    "GaussianDenoiser": "ddpmkit.core.analytic",
    "ClippedDenoiser": "ddpmkit.core.thresholding",
    "DynamicThresholding": "ddpmkit.core.thresholding",
    "PerSampleGenerator": "ddpmkit.core.randomness",
    "SAMPLERS": "ddpmkit.samplers",
    "SampleResult": "ddpmkit.samplers",
    "sample": "ddpmkit.samplers",
    "ancestral": "ddpmkit.samplers",
    "ddpm_ancestral": "ddpmkit.samplers",
    "ddim": "ddpmkit.samplers",
    "ddim_invert": "ddpmkit.samplers",
    "dpmpp_2m": "ddpmkit.samplers",
    "dpmpp_3m": "ddpmkit.samplers",
    "edm_heun": "ddpmkit.samplers",
    "ode_euler": "ddpmkit.samplers",
    "ode_heun": "ddpmkit.samplers",
    "ode_rk45": "ddpmkit.samplers",
    "euler_maruyama": "ddpmkit.samplers",
    "predictor_corrector": "ddpmkit.samplers",
    "annealed_langevin": "ddpmkit.samplers",
    "LossOutput": "ddpmkit.losses",
    "SimpleLoss": "ddpmkit.losses",
    "HybridLoss": "ddpmkit.losses",
    "UniformTimesteps": "ddpmkit.losses",
    "min_snr_weight": "ddpmkit.losses",
    "variational_bound": "ddpmkit.likelihood",
    "ode_log_likelihood": "ddpmkit.likelihood",
    "ode_bits_per_dim": "ddpmkit.likelihood",
    "discretized_gaussian_log_likelihood": "ddpmkit.likelihood",
    "normal_kl": "ddpmkit.likelihood",
    "ClassifierFreeGuidance": "ddpmkit.guidance",
    "ClassifierGuidance": "ddpmkit.guidance",
    "AutoGuidance": "ddpmkit.guidance",
    "Mask": "ddpmkit.inverse",
    "Downsample": "ddpmkit.inverse",
    "GaussianBlur": "ddpmkit.inverse",
    "inpaint_replacement": "ddpmkit.inverse",
    "repaint": "ddpmkit.inverse",
    "dps": "ddpmkit.inverse",
    "ddrm": "ddpmkit.inverse",
    "pigdm": "ddpmkit.inverse",
    "sdedit": "ddpmkit.inverse",
    "UNet": "ddpmkit.networks",
    "UNetConfig": "ddpmkit.networks",
    "Trainer": "ddpmkit.training.loop",
    "load_data": "ddpmkit.data.loading",
}
"""Where each public name lives (PEP 562 lazy attributes)."""

__all__ = [
    "PRESETS",
    "QUICK_START",
    "SAMPLERS",
    "AutoGuidance",
    "AutoencoderReport",
    "ClassifierFreeGuidance",
    "ClassifierGuidance",
    "ClassifierReport",
    "ClippedDenoiser",
    "DataConfig",
    "Denoiser",
    "DiffusionConfig",
    "Downsample",
    "DynamicThresholding",
    "GaussianBlur",
    "GaussianDenoiser",
    "HybridLoss",
    "LossOutput",
    "Mask",
    "Model",
    "ModelConfig",
    "NLLReport",
    "NetworkDenoiser",
    "NoiseSchedule",
    "PerSampleGenerator",
    "QualityReport",
    "Restoration",
    "RunConfig",
    "SampleConfig",
    "SampleResult",
    "SimpleLoss",
    "TrainConfig",
    "Trainer",
    "UNet",
    "UNetConfig",
    "UniformTimesteps",
    "__version__",
    "ancestral",
    "annealed_langevin",
    "build_grid",
    "ddim",
    "ddim_invert",
    "ddpm_ancestral",
    "ddrm",
    "discretized_gaussian_log_likelihood",
    "dpmpp_2m",
    "dpmpp_3m",
    "dps",
    "edm_heun",
    "eps_from_score",
    "eps_from_v",
    "eps_from_x0",
    "euler_maruyama",
    "inpaint_replacement",
    "karras_sigmas",
    "load",
    "load_data",
    "min_snr_weight",
    "normal_kl",
    "ode_bits_per_dim",
    "ode_euler",
    "ode_heun",
    "ode_log_likelihood",
    "ode_rk45",
    "pigdm",
    "posterior_mean",
    "posterior_variance",
    "predictor_corrector",
    "q_sample",
    "q_step",
    "repaint",
    "sample",
    "score_from_eps",
    "sdedit",
    "to_images",
    "train",
    "train_autoencoder",
    "train_classifier",
    "v_from_x0_eps",
    "variational_bound",
    "x0_from_eps",
    "x0_from_score",
    "x0_from_v",
]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'ddpmkit' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)


def __dir__() -> list[str]:
    return sorted(__all__)
