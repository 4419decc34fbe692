"""The probability-flow ODE dx/dσ = (x - D(x; σ))/σ in VE coordinates (Karras et al. 2022, eq. 3).

Song et al. (2021)'s probability-flow ODE of the VP SDE becomes this ODE after the change of
variables x = x_t/√ᾱ, σ = √((1-ᾱ)/ᾱ) (Karras et al. 2022, §2); every solver here integrates it.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
from torch import Tensor

from ddpmkit.core.randomness import Generator, randn_like
from ddpmkit.samplers.common import Sampler, SamplerRun


def ode_derivative(x: Tensor, x0_hat: Tensor, sigma: float) -> Tensor:
    """dx/dσ = (x - D(x; σ))/σ (Karras et al. 2022, eq. 3 with σ(t) = t)."""
    return (x - x0_hat) / sigma


def ode_euler_loop(run: SamplerRun, grid: list[float], x: Tensor, generator: Generator) -> Tensor:
    """Euler's method on the probability-flow ODE; the step to σ = 0 lands on D(x; σ)."""
    for sigma, sigma_next in itertools.pairwise(grid):
        x = x + (sigma_next - sigma) * ode_derivative(x, run.denoise(x, sigma), sigma)
        run.record_ve(x, sigma_next)
    return x


def edm_heun_loop(
    run: SamplerRun,
    grid: list[float],
    x: Tensor,
    generator: Generator,
    *,
    churn: float = 0.0,
    churn_min: float = 0.0,
    churn_max: float = float("inf"),
    churn_noise: float = 1.0,
) -> Tensor:
    """Heun's 2nd-order method with optional stochastic churn (Karras et al. 2022, Algorithm 2).

    With ``churn`` = 0 it is the deterministic Algorithm 1; otherwise each step first raises the
    noise level from σ to σ̂ = σ(1 + γ), γ = min(S_churn/N, √2 - 1) for σ in [S_tmin, S_tmax].
    """
    gamma_max = min(churn / run.num_steps, 2**0.5 - 1)
    for sigma, sigma_next in itertools.pairwise(grid):
        gamma = gamma_max if churn_min <= sigma <= churn_max else 0.0  # Alg. 2, line 4
        sigma_hat = sigma * (1 + gamma)
        if gamma > 0:  # line 6: add noise to move from σ to σ̂
            x = x + (sigma_hat**2 - sigma**2) ** 0.5 * churn_noise * randn_like(x, generator)
        d = ode_derivative(x, run.denoise(x, sigma_hat), sigma_hat)  # line 7
        x_next = x + (sigma_next - sigma_hat) * d  # line 8: Euler step
        if sigma_next > 0:  # lines 9–11: second-order correction
            d_next = ode_derivative(x_next, run.denoise(x_next, sigma_next), sigma_next)
            x_next = x + (sigma_next - sigma_hat) * (d + d_next) / 2
        x = x_next
        run.record_ve(x, sigma_next)
    return x


def ode_rk45_loop(
    run: SamplerRun,
    grid: list[float],
    x: Tensor,
    generator: Generator,
    *,
    rtol: float = 1e-4,
    atol: float = 1e-4,
) -> Tensor:
    """Adaptive Runge–Kutta 4(5) (scipy's RK45) from the grid's first to its last non-zero level.

    Integrates dx/d log σ = x - D(x; σ), smooth over the many decades σ spans, then takes the final
    step to σ = 0 as x̂_0 = D(x; σ_min), like the fixed-step solvers. Only the grid's ends are used
    (the tolerances set the number of evaluations, Song et al. 2021, §4.3); progress is reported
    as the grid levels the solver has passed.
    """
    from scipy.integrate import solve_ivp  # scipy.integrate loads slowly; only RK45 needs it

    sigma_max, sigma_min = grid[0], grid[-2]
    shape, dtype, device = x.shape, x.dtype, x.device

    def rhs(log_sigma: float, flat: np.ndarray) -> np.ndarray:
        state = torch.from_numpy(flat).reshape(shape).to(device, dtype)
        sigma = float(np.exp(log_sigma))
        x_t = state / (1.0 + sigma**2) ** 0.5  # the callback sees VP states, as everywhere
        run.advance_to(sum(level > sigma for level in grid[1:-1]), x_t)
        return (state - run.denoise(state, sigma)).double().cpu().flatten().numpy()

    span = (float(np.log(sigma_max)), float(np.log(sigma_min)))
    solution = solve_ivp(
        rhs, span, x.double().cpu().flatten().numpy(), "RK45", rtol=rtol, atol=atol
    )
    if not solution.success:
        raise RuntimeError(f"RK45 failed: {solution.message}")
    x = torch.from_numpy(solution.y[:, -1]).reshape(shape).to(device, dtype)
    run.advance_to(run.num_steps - 1, x / (1.0 + sigma_min**2) ** 0.5)
    run.record_ve(x, sigma_min, step_done=False)
    x = run.denoise(x, sigma_min)
    run.record(x)
    return x


ode_euler = Sampler(ode_euler_loop, "log_snr", ve=True)
"""Euler's method on the probability-flow ODE dx/dσ = (x - D(x; σ))/σ (Karras et al. 2022, eq. 3).

``ode_euler(denoiser, sigmas, x_T)``; default grid "log_snr"; one denoiser call per step, none
extra; no options. On the same grid it equals ``ddim`` with η = 0.

Args:
    denoiser (Denoiser): D(x; σ) ≈ E[x_0 | x] for x = x_t/√ᾱ in VE coordinates, called on the
        whole batch with ``class_labels``.
    sigmas (Tensor): the noise grid σ_0 > σ_1 > … > σ_N = 0, 1-D, descending and ending in 0
        (``build_grid``); N steps, read as float64 Python floats.
    x_T (Tensor): (B, …) standard normal noise, the VP prior N(0, I); the ODE starts from
        x = x_T·√(1 + σ_0²).

Keyword Args:
    generator (Generator): unused: the sampler is deterministic (a ``torch.Generator``, a
        ``PerSampleGenerator`` or None is accepted, as by every sampler).
    class_labels (Tensor | None): (B,) labels passed to every denoiser call; None (the default):
        unconditional.
    record_trajectory (bool): keep x_T, …, x_0 (VP coordinates x/√(1 + σ²), on the CPU) in
        the result's ``trajectory`` (False by default).
    callback (StepCallback | None): called as ``callback(steps done, N, x_t)`` after every
        step (x_t in VP coordinates); None (the default): no reports.

Returns:
    (SampleResult): x_0 (B, …), the trajectory when recorded, and nfe = N denoiser calls.
"""
ode_heun = Sampler(edm_heun_loop, "log_snr", ve=True, calls_per_level=2, saves_last_call=True)
"""Heun's 2nd-order method on the probability-flow ODE (Karras et al. 2022, Algorithms 1–2).

``ode_heun(denoiser, sigmas, x_T, churn=…, …, generator=…)``: ``edm_heun``'s loop with the
default grid "log_snr" instead of "karras". Two denoiser calls per step, one for the step to
σ = 0 (Euler): 2N - 1.

Args:
    denoiser (Denoiser): D(x; σ) ≈ E[x_0 | x] for x = x_t/√ᾱ in VE coordinates, called on the
        whole batch with ``class_labels``.
    sigmas (Tensor): the noise grid σ_0 > σ_1 > … > σ_N = 0, 1-D, descending and ending in 0
        (``build_grid``); N steps, read as float64 Python floats.
    x_T (Tensor): (B, …) standard normal noise, the VP prior N(0, I); the ODE starts from
        x = x_T·√(1 + σ_0²).

Keyword Args:
    generator (Generator): the churn noise, drawn only when ``churn`` > 0: a
        ``torch.Generator``, a ``PerSampleGenerator`` (row i from its own seed) or None
        (the default: PyTorch's global RNG).
    class_labels (Tensor | None): (B,) labels passed to every denoiser call; None (the default):
        unconditional.
    record_trajectory (bool): keep x_T, …, x_0 (VP coordinates x/√(1 + σ²), on the CPU) in
        the result's ``trajectory`` (False by default).
    callback (StepCallback | None): called as ``callback(steps done, N, x_t)`` after every
        step (x_t in VP coordinates); None (the default): no reports.
    churn (float): S_churn ≥ 0; each step in [S_tmin, S_tmax] first raises σ to σ(1 + γ),
        γ = min(S_churn/N, √2 - 1) (0 by default: deterministic).
    churn_min (float): S_tmin, the lowest σ that is churned (0 by default).
    churn_max (float): S_tmax, the highest σ that is churned (∞ by default).
    churn_noise (float): S_noise, the scale of the added noise's standard deviation (1 by
        default).

Returns:
    (SampleResult): x_0 (B, …), the trajectory when recorded, and nfe = 2N - 1 denoiser calls.
"""
edm_heun = Sampler(edm_heun_loop, "karras", ve=True, calls_per_level=2, saves_last_call=True)
"""EDM's sampler: Heun's 2nd-order method with optional churn (Karras et al. 2022, Algorithm 2).

``edm_heun(denoiser, sigmas, x_T, churn=…, churn_min=…, churn_max=…, churn_noise=…,
generator=…)``; default grid "karras" (eq. 5, ρ = 7). Two denoiser calls per step, one for the
step to σ = 0 (Euler): 2N - 1.

Args:
    denoiser (Denoiser): D(x; σ) ≈ E[x_0 | x] for x = x_t/√ᾱ in VE coordinates, called on the
        whole batch with ``class_labels``.
    sigmas (Tensor): the noise grid σ_0 > σ_1 > … > σ_N = 0, 1-D, descending and ending in 0
        (``build_grid``); N steps, read as float64 Python floats.
    x_T (Tensor): (B, …) standard normal noise, the VP prior N(0, I); the ODE starts from
        x = x_T·√(1 + σ_0²).

Keyword Args:
    generator (Generator): the churn noise, drawn only when ``churn`` > 0: a
        ``torch.Generator``, a ``PerSampleGenerator`` (row i from its own seed) or None
        (the default: PyTorch's global RNG).
    class_labels (Tensor | None): (B,) labels passed to every denoiser call; None (the default):
        unconditional.
    record_trajectory (bool): keep x_T, …, x_0 (VP coordinates x/√(1 + σ²), on the CPU) in
        the result's ``trajectory`` (False by default).
    callback (StepCallback | None): called as ``callback(steps done, N, x_t)`` after every
        step (x_t in VP coordinates); None (the default): no reports.
    churn (float): S_churn ≥ 0; each step in [S_tmin, S_tmax] first raises σ to σ(1 + γ),
        γ = min(S_churn/N, √2 - 1) (0 by default: deterministic).
    churn_min (float): S_tmin, the lowest σ that is churned (0 by default).
    churn_max (float): S_tmax, the highest σ that is churned (∞ by default).
    churn_noise (float): S_noise, the scale of the added noise's standard deviation (1 by
        default).

Returns:
    (SampleResult): x_0 (B, …), the trajectory when recorded, and nfe = 2N - 1 denoiser calls.
"""
ode_rk45 = Sampler(ode_rk45_loop, "log_snr", ve=True, adaptive=True)
"""Adaptive RK45 (scipy) on the probability-flow ODE over log σ (Song et al. 2021, §4.3).

``ode_rk45(denoiser, sigmas, x_T, rtol=…, atol=…)``; only the grid's σ_0 and σ_{N-1} are used
(``sample`` builds a grid of at least 2 levels for it); the tolerances set the number of denoiser
calls, plus one for x̂_0 = D(x; σ_{N-1}). The state goes through NumPy in float64.

Args:
    denoiser (Denoiser): D(x; σ) ≈ E[x_0 | x] for x = x_t/√ᾱ in VE coordinates, called on the
        whole batch with ``class_labels``.
    sigmas (Tensor): the noise grid σ_0 > σ_1 > … > σ_N = 0, 1-D, descending and ending in 0
        (``build_grid``); N steps, read as float64 Python floats.
    x_T (Tensor): (B, …) standard normal noise, the VP prior N(0, I); the ODE starts from
        x = x_T·√(1 + σ_0²).

Keyword Args:
    generator (Generator): unused: the sampler is deterministic (a ``torch.Generator``, a
        ``PerSampleGenerator`` or None is accepted, as by every sampler).
    class_labels (Tensor | None): (B,) labels passed to every denoiser call; None (the default):
        unconditional.
    record_trajectory (bool): keep x_T, x(σ_{N-1}) and x_0 (VP coordinates x/√(1 + σ²), on
        the CPU) in the result's ``trajectory`` (False by default).
    callback (StepCallback | None): called as ``callback(steps done, N, x)`` as the solver
        passes the grid's levels, then with N and x_0 (x: the VE state, not x_t); None (the
        default): no reports.
    rtol (float): the solver's relative tolerance (10⁻⁴ by default).
    atol (float): the solver's absolute tolerance (10⁻⁴ by default).

Returns:
    (SampleResult): x_0 (B, …), the trajectory when recorded, and nfe, the solver's denoiser
        calls plus one.
"""
