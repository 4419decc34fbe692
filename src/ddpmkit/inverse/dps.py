"""Diffusion posterior sampling for y = A(x_0) + n (Chung et al. 2023, Algorithm 1)."""

from __future__ import annotations

import itertools

import torch
from torch import Tensor

from ddpmkit.core.randomness import Generator
from ddpmkit.core.schedules import ReverseVariance, check_variance
from ddpmkit.inverse.operators import MeasurementOperator
from ddpmkit.samplers.ancestral import ancestral_step
from ddpmkit.samplers.common import Sampler, SamplerRun


def dps_loop(
    run: SamplerRun,
    grid: list[float],
    x: Tensor,
    generator: Generator,
    measurement: Tensor,
    operator: MeasurementOperator,
    *,
    step_size: float,
    variance: ReverseVariance = "auto",
) -> Tensor:
    """x_prev = μ̃(x_t, x̂_0) + σ_t z - ζ ∇_{x_t} ‖y - A(x̂_0(x_t))‖ on the grid (Algorithm 1).

    The step is the official code's: ζ times the gradient of the plain norm, which is the
    paper's ζ_t ∇‖y - A(x̂_0)‖² with ζ_t = ζ/(2‖y - A(x̂_0)‖), the residual-normalised step size
    it recommends. The norm is taken per sample (the code's spans the whole batch), so samples
    stay independent. The gradient flows through the denoiser and ``operator`` under
    ``torch.enable_grad``. ζ stands in for the likelihood's 1/σ_y² (§3.2): the measurement
    noise level enters only through it. An approximation: p(y|x_t) ≈ p(y|x̂_0(x_t)).
    """
    check_variance(variance)
    for sigma, sigma_next in itertools.pairwise(grid):
        with torch.enable_grad():
            x_in = x.detach().requires_grad_(True)
            x0_hat, v = run.predict_vp(x_in, sigma)
            distance = (measurement - operator(x0_hat)).flatten(1).norm(dim=1)
            (gradient,) = torch.autograd.grad(distance.sum(), x_in)
        v = None if v is None else v.detach()
        x = ancestral_step(x, x0_hat.detach(), v, sigma, sigma_next, variance, generator)
        x = x - step_size * gradient
        run.record(x)
    return x


dps = Sampler(dps_loop, "linspace")
"""DPS: ``dps(denoiser, sigmas, x_T, measurement, operator, step_size=ζ, generator=…)``."""
