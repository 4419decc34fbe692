"""Ancestral sampling of the reverse chain p_θ(x_{t-1}|x_t) (Ho et al. 2020, Algorithm 2)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any

from torch import Tensor

from ddpmkit.core.denoisers import Denoiser
from ddpmkit.core.grids import timestep_sigmas
from ddpmkit.core.parameterization import alpha_bar_from_sigma
from ddpmkit.core.randomness import Generator, randn_like
from ddpmkit.core.schedules import (
    NoiseSchedule,
    ReverseVariance,
    check_variance,
    choose_log_variance,
    posterior_coefficients,
)
from ddpmkit.samplers.common import Sampler, SampleResult, SamplerRun


def ancestral_loop(
    run: SamplerRun,
    grid: list[float],
    x: Tensor,
    generator: Generator,
    *,
    variance: ReverseVariance = "auto",
) -> Tensor:
    """x_prev = μ̃(x_t, x̂_0) + σ z on the grid's levels, z = 0 at the last step (Algorithm 2).

    μ̃ is the posterior mean (eq. 7) at the denoiser's x̂_0, equal to eq. 11 for ε-models; σ² is
    β̃, β = 1 - ᾱ_t/ᾱ_prev, or the learned Σ_θ between them (Nichol & Dhariwal 2021, eq. 15), all
    of the (possibly respaced) chain (eq. 19). "auto" is the learned variance when the denoiser
    has one, else β̃.
    """
    check_variance(variance)
    return ancestral_steps(run, grid, x, generator, variance)


def ancestral_steps(
    run: SamplerRun,
    grid: list[float],
    x: Tensor,
    generator: Generator,
    variance: ReverseVariance,
    after_step: Callable[[Tensor, float], Tensor] | None = None,
) -> Tensor:
    """Algorithm 2's loop over the grid; ``after_step(x_prev, σ_next)`` may then change x_prev
    (inpainting by replacement puts the known pixels back there)."""
    for sigma, sigma_next in itertools.pairwise(grid):
        x0_hat, v = run.predict_vp(x, sigma)
        x = ancestral_step(x, x0_hat, v, sigma, sigma_next, variance, generator)
        if after_step is not None:
            x = after_step(x, sigma_next)
        run.record(x)
    return x


ancestral = Sampler(ancestral_loop, "linspace")
"""Ancestral sampling x_prev = μ̃(x_t, x̂_0) + σ z (Ho et al. 2020, Algorithm 2) on any grid.

``ancestral(denoiser, sigmas, x_T, generator=…, variance=…)``; default grid "linspace"; one
denoiser call per step, none extra.

Args:
    denoiser (Denoiser): D(x; σ) ≈ E[x_0 | x] for x = x_t/√ᾱ in VE coordinates, called on the
        whole batch with ``class_labels``; its learned variance fraction v, if any, is read.
    sigmas (Tensor): the noise grid σ_0 > σ_1 > … > σ_N = 0, 1-D, descending and ending in 0
        (``build_grid``); N steps, read as float64 Python floats.
    x_T (Tensor): (B, …) standard normal noise, the VP prior N(0, I); the chain starts there.

Keyword Args:
    generator (Generator): the steps' noise z: a ``torch.Generator``, a ``PerSampleGenerator``
        (row i from its own seed) or None (the default: PyTorch's global RNG).
    class_labels (Tensor | None): (B,) labels passed to every denoiser call; None (the default):
        unconditional.
    record_trajectory (bool): keep x_T, …, x_0 (VP coordinates, on the CPU) in the result's
        ``trajectory`` (False by default).
    callback (StepCallback | None): called as ``callback(steps done, N, x_t)`` after every
        step (x_t in VP coordinates); None (the default): no reports.
    variance (ReverseVariance): σ² of a step: "beta_tilde" (β̃), "beta" (β = 1 - ᾱ_t/ᾱ_prev),
        "learned" (Σ_θ of eq. 15; the denoiser must give v) or "auto" (the default: learned
        when the denoiser gives v, else β̃).

Returns:
    (SampleResult): x_0 (B, …), the trajectory when recorded, and nfe = N denoiser calls.
"""


def ancestral_step(
    x_t: Tensor,
    x0_hat: Tensor,
    v: Tensor | None,
    sigma: float,
    sigma_next: float,
    variance: ReverseVariance,
    generator: Generator,
) -> Tensor:
    """x_prev = μ̃(x_t, x̂_0) + σ_t z from level σ to σ_next, z = 0 at σ_next = 0 (Algorithm 2)."""
    alpha_bar, alpha_bar_prev = alpha_bar_from_sigma(sigma), alpha_bar_from_sigma(sigma_next)
    coef_x0, coef_xt, beta_tilde = posterior_coefficients(alpha_bar, alpha_bar_prev)
    x_prev = coef_x0 * x0_hat + coef_xt * x_t
    if sigma_next > 0:
        beta = 1.0 - alpha_bar / alpha_bar_prev
        x_prev = x_prev + _reverse_std(variance, v, beta, beta_tilde) * randn_like(x_t, generator)
    return x_prev


def _reverse_std(
    variance: ReverseVariance, v: Tensor | None, beta: float, beta_tilde: float
) -> Tensor | float:
    """σ of p(x_prev|x_t): √β, √β̃, or exp(½ log Σ_θ) from the denoiser's v (eq. 15)."""
    log_variance = choose_log_variance(variance, v, math.log(beta), math.log(beta_tilde))
    if isinstance(log_variance, Tensor):
        return (0.5 * log_variance).exp()
    return math.exp(0.5 * log_variance)


def ddpm_ancestral(
    denoiser: Denoiser,
    schedule: NoiseSchedule,
    x_T: Tensor,
    **options: Any,
) -> SampleResult:
    """Algorithm 2 of Ho et al. (2020) over all T steps of the schedule.

    ``ancestral`` on the grid of every training step, σ_T > … > σ_1 and then 0 (T denoiser
    calls).

    Args:
        denoiser: D(x; σ) ≈ E[x_0 | x] for x = x_t/√ᾱ in VE coordinates.
        schedule: the noise schedule whose T levels σ_t the chain walks.
        x_T: (B, …) standard normal noise, the VP prior N(0, I).
        **options: what ``ancestral`` takes besides: ``generator``, ``class_labels``,
            ``record_trajectory``, ``callback`` and ``variance``.

    Returns:
        The samples x_0, the trajectory when recorded, and nfe = T.
    """
    return ancestral(
        denoiser, timestep_sigmas(schedule, list(range(schedule.num_steps))), x_T, **options
    )
