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
        run.advance_to(sum(level > sigma for level in grid[1:-1]), state)
        return (state - run.denoise(state, sigma)).double().cpu().flatten().numpy()

    span = (float(np.log(sigma_max)), float(np.log(sigma_min)))
    solution = solve_ivp(
        rhs, span, x.double().cpu().flatten().numpy(), "RK45", rtol=rtol, atol=atol
    )
    if not solution.success:
        raise RuntimeError(f"RK45 failed: {solution.message}")
    x = torch.from_numpy(solution.y[:, -1]).reshape(shape).to(device, dtype)
    run.advance_to(run.num_steps - 1, x)
    run.record_ve(x, sigma_min, step_done=False)
    x = run.denoise(x, sigma_min)
    run.record(x)
    return x


ode_euler = Sampler(ode_euler_loop, "log_snr", ve=True)
ode_heun = Sampler(edm_heun_loop, "log_snr", ve=True, calls_per_level=2, saves_last_call=True)
edm_heun = Sampler(edm_heun_loop, "karras", ve=True, calls_per_level=2, saves_last_call=True)
ode_rk45 = Sampler(ode_rk45_loop, "log_snr", ve=True, adaptive=True)
