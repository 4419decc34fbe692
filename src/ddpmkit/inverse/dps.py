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
"""DPS: ``dps(denoiser, sigmas, x_T, measurement, operator, step_size=ζ, generator=…)``.

Ancestral steps minus ζ ∇_{x_t} ‖y - A(x̂_0(x_t))‖ per sample (Chung et al. 2023, Algorithm 1);
default grid "linspace"; one denoiser call and one backward pass through it per step.

Args:
    denoiser (Denoiser): D(x; σ) ≈ E[x_0 | x] for x = x_t/√ᾱ in VE coordinates, called on the
        whole batch with ``class_labels`` under ``torch.enable_grad``: it must be
        differentiable; its learned variance fraction v, if any, is read.
    sigmas (Tensor): the noise grid σ_0 > σ_1 > … > σ_N = 0, 1-D, descending and ending in 0
        (``build_grid``); N steps, read as float64 Python floats.
    x_T (Tensor): (B, …) standard normal noise, the VP prior N(0, I); the chain starts there.
    measurement (Tensor): y = A(x_0) + n, shaped like ``operator``'s output for the batch.
    operator (MeasurementOperator): A, any differentiable map of the batch x̂_0 (linear or not).

Keyword Args:
    generator (Generator): the steps' noise: a ``torch.Generator``, a
        ``PerSampleGenerator`` (row i from its own seed) or None (the default: PyTorch's
        global RNG).
    class_labels (Tensor | None): (B,) labels passed to every denoiser call; None (the default):
        unconditional.
    record_trajectory (bool): keep x_T, …, x_0 (VP coordinates, on the CPU) in the result's
        ``trajectory`` (False by default).
    callback (StepCallback | None): called as ``callback(steps done, N, x_t)`` after every
        step (x_t in VP coordinates); None (the default): no reports.
    step_size (float): ζ, required; it stands in for the likelihood's 1/σ_y² (§3.2).
    variance (ReverseVariance): σ² of a step: "beta_tilde" (β̃), "beta" (β = 1 - ᾱ_t/ᾱ_prev),
        "learned" (Σ_θ of eq. 15; the denoiser must give v) or "auto" (the default: learned
        when the denoiser gives v, else β̃).

Returns:
    (SampleResult): x_0 (B, …), the trajectory when recorded, and nfe = N denoiser calls.
"""
