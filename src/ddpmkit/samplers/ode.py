"""The probability-flow ODE dx/dσ = (x - D(x; σ))/σ in VE coordinates (Karras et al. 2022, eq. 3).

Song et al. (2021)'s probability-flow ODE of the VP SDE becomes this ODE after the change of
variables x = x_t/√ᾱ, σ = √((1-ᾱ)/ᾱ) (Karras et al. 2022, §2); every solver here integrates it.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
from scipy.integrate import solve_ivp
from torch import Tensor

from ddpmkit.core.denoisers import Denoiser
from ddpmkit.core.randomness import Generator, randn_like
from ddpmkit.samplers.common import SampleResult, SamplerRun, StepCallback, levels


def ode_derivative(x: Tensor, x0_hat: Tensor, sigma: float) -> Tensor:
    """dx/dσ = (x - D(x; σ))/σ (Karras et al. 2022, eq. 3 with σ(t) = t)."""
    return (x - x0_hat) / sigma


@torch.no_grad()
def ode_euler(
    denoiser: Denoiser,
    sigmas: Tensor,
    x_T: Tensor,
    *,
    generator: Generator = None,
    class_labels: Tensor | None = None,
    record_trajectory: bool = False,
    callback: StepCallback | None = None,
) -> SampleResult:
    """Euler's method on the probability-flow ODE; the step to σ = 0 lands on D(x; σ)."""
    grid, run, x = SamplerRun.start(
        denoiser, sigmas, x_T, class_labels, record_trajectory, callback, ve=True
    )
    for sigma, sigma_next in itertools.pairwise(grid):
        x = x + (sigma_next - sigma) * ode_derivative(x, run.denoise(x, sigma), sigma)
        run.record_ve(x, sigma_next)
    return run.result(x)


@torch.no_grad()
def edm_heun(
    denoiser: Denoiser,
    sigmas: Tensor,
    x_T: Tensor,
    *,
    churn: float = 0.0,
    churn_min: float = 0.0,
    churn_max: float = float("inf"),
    churn_noise: float = 1.0,
    generator: Generator = None,
    class_labels: Tensor | None = None,
    record_trajectory: bool = False,
    callback: StepCallback | None = None,
) -> SampleResult:
    """Heun's 2nd-order method with optional stochastic churn (Karras et al. 2022, Algorithm 2).

    With ``churn`` = 0 it is the deterministic Algorithm 1; otherwise each step first raises the
    noise level from σ to σ̂ = σ(1 + γ), γ = min(S_churn/N, √2 - 1) for σ in [S_tmin, S_tmax].
    """
    grid, run, x = SamplerRun.start(
        denoiser, sigmas, x_T, class_labels, record_trajectory, callback, ve=True
    )
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
    return run.result(x)


@torch.no_grad()
def ode_rk45(
    denoiser: Denoiser,
    sigmas: Tensor,
    x_T: Tensor,
    *,
    rtol: float = 1e-4,
    atol: float = 1e-4,
    generator: Generator = None,
    class_labels: Tensor | None = None,
    record_trajectory: bool = False,
    callback: StepCallback | None = None,
) -> SampleResult:
    """Adaptive Runge–Kutta 4(5) (scipy's RK45) from the grid's first to its last non-zero level.

    Integrates dx/d log σ = x - D(x; σ), smooth over the many decades σ spans, then takes the final
    step to σ = 0 as x̂_0 = D(x; σ_min), like the fixed-step solvers. Only the grid's ends are used;
    the tolerances set the number of evaluations (Song et al. 2021, §4.3).
    """
    grid = levels(sigmas)
    sigma_max, sigma_min = grid[0], grid[-2]
    run = SamplerRun(denoiser, class_labels, 1, record_trajectory, callback)
    x = x_T * (1 + sigma_max**2) ** 0.5
    run.record_ve(x, sigma_max, step_done=False)
    shape, dtype, device = x.shape, x.dtype, x.device

    def rhs(log_sigma: float, flat: np.ndarray) -> np.ndarray:
        state = torch.from_numpy(flat).reshape(shape).to(device, dtype)
        sigma = float(np.exp(log_sigma))
        return (state - run.denoise(state, sigma)).double().cpu().flatten().numpy()

    span = (float(np.log(sigma_max)), float(np.log(sigma_min)))
    solution = solve_ivp(
        rhs, span, x.double().cpu().flatten().numpy(), "RK45", rtol=rtol, atol=atol
    )
    if not solution.success:
        raise RuntimeError(f"RK45 failed: {solution.message}")
    x = torch.from_numpy(solution.y[:, -1]).reshape(shape).to(device, dtype)
    run.record_ve(x, sigma_min, step_done=False)
    x = run.denoise(x, sigma_min)
    run.record(x)
    return run.result(x)
