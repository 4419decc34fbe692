"""Exact log-likelihood through the probability-flow ODE (Song et al. 2021, §4.3 and App. D.2).

In VE coordinates the ODE is dx/dσ = (x - D(x; σ))/σ (Karras et al. 2022, eq. 3); over s = log σ
it reads dx/ds = g(x, s) = x - D(x; σ). By the instantaneous change of variables (Chen et al.
2018, Thm. 1), d log p_σ(x(σ))/ds = -∇·g, so integrating from the data at σ_min up to σ_max,

    log p_{σ_min}(x(σ_min)) = log p_{σ_max}(x(σ_max)) + ∫ ∇·g ds,   ∇·g = D_dims - tr ∂D/∂x,

with the prior p_{σ_max} = N(0, (1 + σ_max²) I): the VP prior N(0, I) of x_T = √ᾱ_T x seen in
VE coordinates. The trace is exact (D backward passes) or Hutchinson's estimate vᵀ(∂D/∂x)v with
probes v fixed over the whole integration (Grathwohl et al. 2019). The denoiser must treat the
samples of a batch independently (true in eval mode: no batch norm, no dropout).

Discrete data: for 8-bit data on the grid x = k/127.5 - 1 (levels 2/255 apart, the grid DDPM
trains on) the bins [x - 1/255, x + 1/255) tile the line, and uniform dequantization
x̃ = x + u, u ~ U(-1/255, 1/255)^D, gives log P(k) ≥ E_u[log p(x̃)] + D log(2/255) (Jensen), so

    bits/dim = (-log p(x̃)/D + log 127.5)/ln 2     (``dequantized_bits_per_dim``).

The same bins are the interior bins of DDPM's discretized decoder (``gaussian.py``), so this
and the variational bound measure the same discrete probability. score_sde instead maps the
data to (k + u)/128 - 1 (bins 2/256 wide on a grid 1/128 apart), whose constant is log 128
(the "+7 bits" offset); the two differ by log₂(128/127.5) ≈ 0.00565 bits/dim and in the grid.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from ddpmkit.core.denoisers import Denoiser
from ddpmkit.core.schedules import NoiseSchedule

LOG_2PI = math.log(2.0 * math.pi)

TraceEstimator = Literal["rademacher", "gaussian", "exact"]
Divergence = Callable[[Tensor, Tensor], Tensor]
"""(x, x0_hat) with x requiring grad and x0_hat = D(x; σ) -> (B,) tr ∂D/∂x (or its estimate)."""


@dataclass(frozen=True)
class ODELikelihood:
    """log p_{σ_min}(x) by the probability-flow ODE, in nats, continuous density in x's units."""

    log_likelihood: Tensor  # (B,) prior_log_prob + delta_log_p
    prior_log_prob: Tensor  # (B,) log N(x(σ_max); 0, (1 + σ_max²) I)
    delta_log_p: Tensor  # (B,) ∫ ∇·g d log σ from σ_min to σ_max
    x_end: Tensor  # x(σ_max), the encoding in VE coordinates (x_T = x_end/√(1 + σ_max²))
    nfe: int  # denoiser evaluations (each with its trace computation)


def _hutchinson(probes: Tensor) -> Divergence:
    """vᵀ(∂D/∂x)v with fixed probes v (Hutchinson 1989); one vector-Jacobian product per call."""

    def trace(x: Tensor, x0_hat: Tensor) -> Tensor:
        (vjp,) = torch.autograd.grad((x0_hat * probes).sum(), x)
        return (vjp * probes).flatten(1).sum(dim=1)

    return trace


def _exact_trace(x: Tensor, x0_hat: Tensor) -> Tensor:
    """tr ∂D/∂x by one backward pass per dimension (for low-dimensional data)."""
    flat = x0_hat.flatten(1)
    total = torch.zeros(x.shape[0], dtype=x0_hat.dtype, device=x.device)
    for i in range(flat.shape[1]):
        (row,) = torch.autograd.grad(flat[:, i].sum(), x, retain_graph=True)
        total = total + row.flatten(1)[:, i]
    return total


def _divergence(
    estimator: TraceEstimator, x: Tensor, generator: torch.Generator | None
) -> Divergence:
    """The trace computation, resolved once: exact, or Hutchinson with Rademacher/Gaussian probes."""
    if estimator == "exact":
        return _exact_trace
    gen_device = generator.device if generator is not None else x.device
    probes = torch.randn(x.shape, generator=generator, device=gen_device, dtype=x.dtype)
    if estimator == "rademacher":
        probes = probes.sign()
    elif estimator != "gaussian":
        raise ValueError(f"unknown trace estimator {estimator!r}; use rademacher|gaussian|exact")
    return _hutchinson(probes.to(x.device))


def prior_log_prob(x_end: Tensor, sigma_max: float) -> Tensor:
    """(B,) log N(x; 0, (1 + σ_max²) I): the VP prior N(0, I) in VE coordinates."""
    variance = 1.0 + sigma_max**2
    flat = x_end.to(torch.float64).flatten(1)
    return -0.5 * ((flat**2).sum(dim=1) / variance + flat.shape[1] * (LOG_2PI + math.log(variance)))


def _ode_rhs(
    denoiser: Denoiser,
    divergence: Divergence,
    shape: torch.Size,
    like: Tensor,
    class_labels: Tensor | None,
) -> Callable[[float, np.ndarray], np.ndarray]:
    """State [x, Δlog p] -> [dx/ds, d Δlog p/ds] = [x - D(x; σ), D_dims - tr ∂D/∂x], s = log σ."""
    batch, dims = shape[0], math.prod(shape[1:])

    def rhs(log_sigma: float, state: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(state[: batch * dims]).reshape(shape).to(like.device, like.dtype)
        sigma = torch.full((batch,), math.exp(log_sigma), dtype=like.dtype, device=like.device)
        with torch.enable_grad():
            x.requires_grad_(True)
            x0_hat = denoiser(x, sigma, class_labels)
            trace = divergence(x, x0_hat)
        dx = (x - x0_hat).detach().to(torch.float64).flatten()
        d_delta = dims - trace.detach().to(torch.float64)
        return torch.cat([dx, d_delta]).cpu().numpy()

    return rhs


def ode_log_likelihood(
    denoiser: Denoiser,
    schedule: NoiseSchedule,
    x: Tensor,
    *,
    estimator: TraceEstimator = "rademacher",
    generator: torch.Generator | None = None,
    sigma_min: float | None = None,
    sigma_max: float | None = None,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    class_labels: Tensor | None = None,
) -> ODELikelihood:
    """log p_{σ_min}(x) for a batch x (VE coordinates = data units), Song et al. (2021), eq. 40.

    σ_min and σ_max default to the schedule's first and last σ; RK45 (scipy) over log σ with
    state [x, Δlog p] and the given tolerances. The probes come from ``generator``.

    Args:
        denoiser: D(x; σ) ≈ E[x_0 | x] for x = x_t/√ᾱ in VE coordinates, differentiable in x
            and treating the samples independently (eval mode).
        schedule: the noise schedule whose σ_1 and σ_T are the default ends.
        x: (B, …) the data at σ_min, VE coordinates (data units).
        estimator: tr ∂D/∂x by "rademacher" or "gaussian" Hutchinson probes (one
            vector-Jacobian product per evaluation) or "exact" (one backward pass per
            dimension, for low-dimensional data).
        generator: draws the probes, once for the whole integration; None: PyTorch's global
            RNG. Unused by "exact".
        sigma_min: the level the data sit at; None: σ_1, the schedule's smallest.
        sigma_max: the level of the prior N(0, (1 + σ_max²) I); None: σ_T, the largest.
        rtol: RK45's relative tolerance.
        atol: RK45's absolute tolerance.
        class_labels: (B,) labels passed to every denoiser call; None: unconditional.

    Returns:
        log p_{σ_min}(x) in nats (B,), its prior and ODE parts, x(σ_max) and the solver's
            evaluations.
    """
    from scipy.integrate import solve_ivp  # loads slowly; only the ODE likelihood needs it

    sigma_min = float(schedule.sigmas[0]) if sigma_min is None else sigma_min
    sigma_max = float(schedule.sigmas[-1]) if sigma_max is None else sigma_max
    divergence = _divergence(estimator, x, generator)
    rhs = _ode_rhs(denoiser, divergence, x.shape, x, class_labels)
    start = np.concatenate([x.detach().to(torch.float64).cpu().flatten().numpy(), np.zeros(len(x))])
    span = (math.log(sigma_min), math.log(sigma_max))
    solution = solve_ivp(rhs, span, start, "RK45", rtol=rtol, atol=atol)
    if not solution.success:
        raise RuntimeError(f"RK45 failed: {solution.message}")
    end = torch.from_numpy(solution.y[:, -1])
    x_end = end[: x.numel()].reshape(x.shape)
    delta = end[x.numel() :].to(x.device)
    prior = prior_log_prob(x_end, sigma_max).to(x.device)
    return ODELikelihood(prior + delta, prior, delta, x_end.to(x.device, x.dtype), solution.nfev)


def dequantize(
    x: Tensor, generator: torch.Generator | None = None, num_levels: int = 256
) -> Tensor:
    """x + u, u ~ U(-δ, δ) with δ = 1/(num_levels - 1): uniform noise over the bin of each level."""
    half_width = 1.0 / (num_levels - 1)
    gen_device = generator.device if generator is not None else x.device
    u = torch.rand(x.shape, generator=generator, device=gen_device, dtype=x.dtype).to(x.device)
    return x + (2.0 * u - 1.0) * half_width


def dequantized_bits_per_dim(log_likelihood: Tensor, dims: int, num_levels: int = 256) -> Tensor:
    """(-log p(x̃)/D + log((num_levels - 1)/2))/ln 2: a bound on -log₂ P(k)/D (bins 2/255 wide)."""
    return (-log_likelihood / dims + math.log((num_levels - 1) / 2.0)) / math.log(2.0)


def ode_bits_per_dim(
    denoiser: Denoiser,
    schedule: NoiseSchedule,
    x: Tensor,
    *,
    generator: torch.Generator | None = None,
    num_levels: int = 256,
    estimator: TraceEstimator = "rademacher",
    rtol: float = 1e-5,
    atol: float = 1e-5,
    class_labels: Tensor | None = None,
) -> tuple[Tensor, ODELikelihood]:
    """(B,) bits/dim of discrete data x ∈ [-1, 1] by dequantization and the ODE likelihood.

    The dequantization noise is drawn from ``generator`` before the Hutchinson probes; the
    ODE runs from the schedule's σ_1 to σ_T.

    Args:
        denoiser: D(x; σ) ≈ E[x_0 | x] for x = x_t/√ᾱ in VE coordinates, differentiable in x
            and treating the samples independently (eval mode).
        schedule: the noise schedule whose σ_1 and σ_T are the ODE's ends.
        x: (B, …) discrete data on the grid -1 + 2k/(num_levels - 1).
        generator: draws the dequantization noise, then the probes; None: PyTorch's global
            RNG.
        num_levels: the number of discrete values (256 for 8-bit data); the bins are
            2/(num_levels - 1) wide.
        estimator: tr ∂D/∂x by "rademacher" or "gaussian" Hutchinson probes, or "exact"
            (``ode_log_likelihood``).
        rtol: RK45's relative tolerance.
        atol: RK45's absolute tolerance.
        class_labels: (B,) labels passed to every denoiser call; None: unconditional.

    Returns:
        (B,) bits/dim, an upper bound on -log₂ P(x)/D in expectation over the
            dequantization, and the ODE's result for the dequantized x̃.
    """
    x_tilde = dequantize(x, generator, num_levels)
    result = ode_log_likelihood(
        denoiser,
        schedule,
        x_tilde,
        estimator=estimator,
        generator=generator,
        rtol=rtol,
        atol=atol,
        class_labels=class_labels,
    )
    return dequantized_bits_per_dim(result.log_likelihood, x[0].numel(), num_levels), result
