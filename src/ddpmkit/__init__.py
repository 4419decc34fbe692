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

The names below are imported on first use, so that ``import ddpmkit.cli`` (and ``ddpmkit --help``)
does not load PyTorch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ddpmkit.core.analytic import GaussianDenoiser
    from ddpmkit.core.denoisers import Denoiser, NetworkDenoiser
    from ddpmkit.core.forward import posterior_mean, posterior_variance, q_sample, q_step
    from ddpmkit.core.randomness import PerSampleGenerator
    from ddpmkit.core.schedules import NoiseSchedule
    from ddpmkit.losses import LossOutput, SimpleLoss, UniformTimesteps
    from ddpmkit.samplers import SampleResult, ddpm_ancestral

__version__ = "0.1.0"

_HOMES = {
    "GaussianDenoiser": "ddpmkit.core.analytic",
    "Denoiser": "ddpmkit.core.denoisers",
    "NetworkDenoiser": "ddpmkit.core.denoisers",
    "posterior_mean": "ddpmkit.core.forward",
    "posterior_variance": "ddpmkit.core.forward",
    "q_sample": "ddpmkit.core.forward",
    "q_step": "ddpmkit.core.forward",
    "PerSampleGenerator": "ddpmkit.core.randomness",
    "NoiseSchedule": "ddpmkit.core.schedules",
    "SampleResult": "ddpmkit.samplers",
    "ddpm_ancestral": "ddpmkit.samplers",
    "LossOutput": "ddpmkit.losses",
    "SimpleLoss": "ddpmkit.losses",
    "UniformTimesteps": "ddpmkit.losses",
}
"""Where each public name lives (PEP 562 lazy attributes)."""

__all__ = [
    "Denoiser",
    "GaussianDenoiser",
    "LossOutput",
    "NetworkDenoiser",
    "NoiseSchedule",
    "PerSampleGenerator",
    "SampleResult",
    "SimpleLoss",
    "UniformTimesteps",
    "__version__",
    "ddpm_ancestral",
    "posterior_mean",
    "posterior_variance",
    "q_sample",
    "q_step",
]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'ddpmkit' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)
