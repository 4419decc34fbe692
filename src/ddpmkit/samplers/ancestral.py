"""Ancestral sampling of the reverse chain p_θ(x_{t-1}|x_t) (Ho et al. 2020, Algorithm 2)."""

from __future__ import annotations

import itertools
from typing import Literal

import torch
from torch import Tensor

from ddpmkit.denoisers import Denoiser
from ddpmkit.grids import timestep_sigmas
from ddpmkit.parameterization import alpha_bar_from_sigma
from ddpmkit.randomness import Generator, randn_like
from ddpmkit.samplers.common import SampleResult, SamplerRun, StepCallback
from ddpmkit.schedules import NoiseSchedule, posterior_coefficients

ReverseVariance = Literal["beta", "beta_tilde"]


@torch.no_grad()
def ancestral(
    denoiser: Denoiser,
    sigmas: Tensor,
    x_T: Tensor,
    *,
    variance: ReverseVariance = "beta_tilde",
    generator: Generator = None,
    class_labels: Tensor | None = None,
    record_trajectory: bool = False,
    callback: StepCallback | None = None,
) -> SampleResult:
    """x_prev = μ̃(x_t, x̂_0) + σ z on the grid's levels, z = 0 at the last step (Algorithm 2).

    μ̃ is the posterior mean (eq. 7) at the denoiser's x̂_0, equal to eq. 11 for ε-models; σ² is
    β̃ or β = 1 - ᾱ_t/ᾱ_prev of the (possibly respaced) chain (Nichol & Dhariwal 2021, eq. 19).
    """
    if variance not in ("beta", "beta_tilde"):
        raise ValueError(f"unknown reverse variance {variance!r}; choose 'beta' or 'beta_tilde'")
    grid, run, x = SamplerRun.start(
        denoiser, sigmas, x_T, class_labels, record_trajectory, callback, ve=False
    )
    for sigma, sigma_next in itertools.pairwise(grid):
        alpha_bar, alpha_bar_prev = alpha_bar_from_sigma(sigma), alpha_bar_from_sigma(sigma_next)
        x0_hat = run.denoise_vp(x, sigma)
        coef_x0, coef_xt, beta_tilde = posterior_coefficients(alpha_bar, alpha_bar_prev)
        x = coef_x0 * x0_hat + coef_xt * x
        if sigma_next > 0:
            var = beta_tilde if variance == "beta_tilde" else 1.0 - alpha_bar / alpha_bar_prev
            x = x + var**0.5 * randn_like(x, generator)
        run.record(x)
    return run.result(x)


def ddpm_ancestral(
    denoiser: Denoiser,
    schedule: NoiseSchedule,
    x_T: Tensor,
    **options: object,
) -> SampleResult:
    """Algorithm 2 of Ho et al. (2020) over all T steps of the schedule."""
    return ancestral(
        denoiser, timestep_sigmas(schedule, list(range(schedule.num_steps))), x_T, **options
    )  # type: ignore[arg-type]
