"""The score-SDE view (Song et al. 2021): the reverse VP SDE, predictor–corrector, annealed Langevin.

The VP SDE dx = -½β(τ)x dτ + √β(τ) dw is the continuous limit of the DDPM chain, with
ᾱ(τ) = exp(-∫_0^τ β) (Song et al. 2021, eqs. 10–11). Between two grid levels the integral of β is
Δ = log(ᾱ_prev/ᾱ), so the samplers below need only the grid, never a separate β(τ).
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import Tensor

from ddpmkit.core.parameterization import alpha_bar_from_sigma, eps_from_x0, score_from_eps
from ddpmkit.core.randomness import Generator, randn_like
from ddpmkit.samplers.common import Sampler, SamplerRun


def vp_score(x_t: Tensor, x0_hat: Tensor, alpha_bar: float) -> Tensor:
    """∇ log p_t(x_t) = (√ᾱ x̂_0 - x_t)/(1-ᾱ) (Tweedie), via the one ε ↔ x_0 ↔ score conversion."""
    alpha_bar_t = torch.tensor(alpha_bar, dtype=x_t.dtype, device=x_t.device)
    return score_from_eps(eps_from_x0(x_t, x0_hat, alpha_bar_t), alpha_bar_t)


def reverse_vp_sde_step(x_t: Tensor, score: Tensor, beta_dt: float, generator: Generator) -> Tensor:
    """One Euler–Maruyama step of dx = [-½βx - β∇log p]dτ + √β dw̄ backwards by dτ (Song et al. eq. 6)."""
    noise_scale: float = beta_dt**0.5
    return x_t + (0.5 * x_t + score) * beta_dt + noise_scale * randn_like(x_t, generator)


def predictor_step(
    run: SamplerRun, x_t: Tensor, sigma: float, sigma_next: float, generator: Generator
) -> Tensor:
    """The reverse-SDE step from level σ to σ_next, ∫β dτ = log(ᾱ_next/ᾱ); at σ_next = 0, x̂_0."""
    x0_hat = run.denoise_vp(x_t, sigma)
    if sigma_next == 0:
        return x0_hat
    alpha_bar, alpha_bar_next = alpha_bar_from_sigma(sigma), alpha_bar_from_sigma(sigma_next)
    score = vp_score(x_t, x0_hat, alpha_bar)
    return reverse_vp_sde_step(x_t, score, math.log(alpha_bar_next / alpha_bar), generator)


def euler_maruyama_loop(
    run: SamplerRun, grid: list[float], x: Tensor, generator: Generator
) -> Tensor:
    """The reverse VP SDE by Euler–Maruyama; the step to σ = 0 is the noise-free x̂_0 (Tweedie)."""
    for sigma, sigma_next in itertools.pairwise(grid):
        x = predictor_step(run, x, sigma, sigma_next, generator)
        run.record(x)
    return x


def langevin_step(x: Tensor, score: Tensor, step: Tensor | float, generator: Generator) -> Tensor:
    """x + ε·∇log p(x) + √(2ε) z (Song & Ermon 2019, eq. 4 with ε = α/2)."""
    return x + step * score + (2 * step) ** 0.5 * randn_like(x, generator)


def snr_step_size(snr: float, alpha: float, alpha_bar: float) -> float:
    """ε = 2α(r‖z‖/‖∇log p‖)² with the norms' noise-level values ‖z‖² = d, ‖∇log p‖² = d/(1-ᾱ).

    Song et al. (2021), Algorithm 5 measures both norms on the batch, which ties samples together
    and, for low-dimensional data, lets a near-zero score blow the step up; with the norms of the
    noise-dominated marginal the step is 2α r²(1-ᾱ), the same for every sample.
    """
    return 2 * alpha * snr**2 * (1 - alpha_bar)


def predictor_corrector_loop(
    run: SamplerRun,
    grid: list[float],
    x: Tensor,
    generator: Generator,
    *,
    snr: float = 0.16,
    corrector_steps: int = 1,
) -> Tensor:
    """PC sampling: Langevin corrector steps at each level, then a reverse-SDE predictor step.

    Song et al. (2021), Algorithms 2 and 5 (VP): the corrector's step size follows the target
    signal-to-noise ratio r = ``snr``, computed per sample so that batches do not interact.
    """
    for sigma, sigma_next in itertools.pairwise(grid):
        alpha_bar, alpha_bar_prev = alpha_bar_from_sigma(sigma), alpha_bar_from_sigma(sigma_next)
        for _ in range(corrector_steps if sigma_next > 0 else 0):
            score = vp_score(x, run.denoise_vp(x, sigma), alpha_bar)
            step = snr_step_size(snr, alpha_bar / alpha_bar_prev, alpha_bar)
            x = langevin_step(x, score, step, generator)
        x = predictor_step(run, x, sigma, sigma_next, generator)
        run.record(x)
    return x


def annealed_langevin_loop(
    run: SamplerRun,
    grid: list[float],
    x: Tensor,
    generator: Generator,
    *,
    langevin_steps: int = 5,
    langevin_step_size: float = 0.2,
) -> Tensor:
    """Annealed Langevin dynamics over the grid's levels (Song & Ermon 2019, Algorithm 1).

    At each σ_i, ``langevin_steps`` steps x ← x + (α_i/2)∇log p_σi(x) + √α_i z with
    α_i = c·σ_i², c = ``langevin_step_size`` (the paper's ε/σ_L²: ε = 2·10⁻⁵ at σ_L = 0.01 is
    c = 0.2), in VE coordinates where ∇log p_σ(x) = (D(x; σ) - x)/σ²; then the denoising step
    x̂_0 = D(x; σ_L) (Jolicoeur-Martineau et al. 2021).
    """
    for sigma in grid[:-1]:
        alpha = langevin_step_size * sigma**2
        for _ in range(langevin_steps):
            score = (run.denoise(x, sigma) - x) / sigma**2
            x = langevin_step(x, score, alpha / 2, generator)
        run.record_ve(x, sigma)
    x = run.denoise(x, grid[-2])
    run.record(x, step_done=False)
    return x


euler_maruyama = Sampler(euler_maruyama_loop, "linspace")
"""The reverse VP SDE by Euler–Maruyama (Song et al. 2021, eq. 6), x̂_0 at the step to σ = 0.

``euler_maruyama(denoiser, sigmas, x_T, generator=…)``; default grid "linspace"; one denoiser
call per step, none extra; no options.

Args:
    denoiser (Denoiser): D(x; σ) ≈ E[x_0 | x] for x = x_t/√ᾱ in VE coordinates, called on the
        whole batch with ``class_labels``; the score is (√ᾱ x̂_0 - x_t)/(1-ᾱ).
    sigmas (Tensor): the noise grid σ_0 > σ_1 > … > σ_N = 0, 1-D, descending and ending in 0
        (``build_grid``); N steps, read as float64 Python floats.
    x_T (Tensor): (B, …) standard normal noise, the VP prior N(0, I); the chain starts there.

Keyword Args:
    generator (Generator): the steps' noise: a ``torch.Generator``, a ``PerSampleGenerator``
        (row i from its own seed) or None (the default: PyTorch's global RNG).
    class_labels (Tensor | None): (B,) labels passed to every denoiser call; None (the default):
        unconditional.
    record_trajectory (bool): keep x_T, …, x_0 (VP coordinates, on the CPU) in the result's
        ``trajectory`` (False by default).
    callback (StepCallback | None): called as ``callback(steps done, N, x_t)`` after every
        step (x_t in VP coordinates); None (the default): no reports.

Returns:
    (SampleResult): x_0 (B, …), the trajectory when recorded, and nfe = N denoiser calls.
"""
predictor_corrector = Sampler(
    predictor_corrector_loop,
    "linspace",
    calls_per_level=2,
    saves_last_call=True,
    calls_per_level_option="corrector_steps",
)
"""Predictor–corrector sampling (Song et al. 2021, Algorithms 2 and 5, VP).

``predictor_corrector(denoiser, sigmas, x_T, snr=…, corrector_steps=…, generator=…)``; default
grid "linspace"; at each of σ_0 … σ_{N-2}, ``corrector_steps`` Langevin steps then one
Euler–Maruyama step; the step from σ_{N-1} to 0 is the predictor's x̂_0 alone:
N + (N - 1)·corrector_steps denoiser calls.

Args:
    denoiser (Denoiser): D(x; σ) ≈ E[x_0 | x] for x = x_t/√ᾱ in VE coordinates, called on the
        whole batch with ``class_labels``; the score is (√ᾱ x̂_0 - x_t)/(1-ᾱ).
    sigmas (Tensor): the noise grid σ_0 > σ_1 > … > σ_N = 0, 1-D, descending and ending in 0
        (``build_grid``); N steps, read as float64 Python floats.
    x_T (Tensor): (B, …) standard normal noise, the VP prior N(0, I); the chain starts there.

Keyword Args:
    generator (Generator): the corrector's and the predictor's noise: a ``torch.Generator``, a
        ``PerSampleGenerator`` (row i from its own seed) or None (the default: PyTorch's
        global RNG).
    class_labels (Tensor | None): (B,) labels passed to every denoiser call; None (the default):
        unconditional.
    record_trajectory (bool): keep x_T, …, x_0 (VP coordinates, on the CPU) in the result's
        ``trajectory`` (False by default).
    callback (StepCallback | None): called as ``callback(steps done, N, x_t)`` after every
        step (x_t in VP coordinates); None (the default): no reports.
    snr (float): r, the corrector's target signal-to-noise ratio; its step is
        2α_t r²(1-ᾱ_t), the same for every sample (0.16 by default).
    corrector_steps (int): Langevin corrector steps per level, 0 for none (1 by default).

Returns:
    (SampleResult): x_0 (B, …), the trajectory when recorded, and
        nfe = N + (N - 1)·corrector_steps denoiser calls.
"""
annealed_langevin = Sampler(
    annealed_langevin_loop,
    "log_snr",
    ve=True,
    calls_per_level_option="langevin_steps",
    final_calls=1,
)
"""Annealed Langevin dynamics (Song & Ermon 2019, Algorithm 1) with a final denoising step.

``annealed_langevin(denoiser, sigmas, x_T, langevin_steps=…, langevin_step_size=…,
generator=…)``; default grid "log_snr"; in VE coordinates, ``langevin_steps`` denoiser calls
at each of σ_0 … σ_{N-1}, then x̂_0 = D(x; σ_{N-1}): N·langevin_steps + 1 calls.

Args:
    denoiser (Denoiser): D(x; σ) ≈ E[x_0 | x] for x = x_t/√ᾱ in VE coordinates, called on the
        whole batch with ``class_labels``; the score is (D(x; σ) - x)/σ².
    sigmas (Tensor): the noise grid σ_0 > σ_1 > … > σ_N = 0, 1-D, descending and ending in 0
        (``build_grid``); N steps, read as float64 Python floats; σ = 0 itself is not visited.
    x_T (Tensor): (B, …) standard normal noise, the VP prior N(0, I); the loop starts from
        x = x_T·√(1 + σ_0²).

Keyword Args:
    generator (Generator): the Langevin steps' noise: a ``torch.Generator``, a
        ``PerSampleGenerator`` (row i from its own seed) or None (the default: PyTorch's
        global RNG).
    class_labels (Tensor | None): (B,) labels passed to every denoiser call; None (the default):
        unconditional.
    record_trajectory (bool): keep x_T, the state after each level's Langevin steps and x_0
        (VP coordinates, on the CPU) in the result's ``trajectory`` (False by default).
    callback (StepCallback | None): called as ``callback(steps done, N, x_t)`` after each
        level's Langevin steps (x_t in VP coordinates); None (the default): no reports.
    langevin_steps (int): Langevin steps per level (5 by default; the paper's T).
    langevin_step_size (float): c of the step α_i = c·σ_i² (0.2 by default: the paper's
        ε = 2·10⁻⁵ at σ_L = 0.01).

Returns:
    (SampleResult): x_0 (B, …), the trajectory when recorded, and nfe = N·langevin_steps + 1.
"""
