"""DDIM sampling and deterministic encoding (Song, Meng & Ermon 2021)."""

from __future__ import annotations

import itertools

import torch
from torch import Tensor

from ddpmkit.core.denoisers import Denoiser
from ddpmkit.core.parameterization import alpha_bar_from_sigma, eps_from_x0
from ddpmkit.core.randomness import Generator, randn_like
from ddpmkit.samplers.common import Sampler, SamplerRun, StepCallback, levels


def ddim_sigma(alpha_bar: float, alpha_bar_prev: float, eta: float) -> float:
    """σ_t(η) = η √((1-ᾱ_prev)/(1-ᾱ_t)) √(1 - ᾱ_t/ᾱ_prev) (Song et al. 2021, eq. 16)."""
    sigma: float = (
        eta * ((1 - alpha_bar_prev) / (1 - alpha_bar) * (1 - alpha_bar / alpha_bar_prev)) ** 0.5
    )
    return sigma


def ddim_loop(
    run: SamplerRun, grid: list[float], x: Tensor, generator: Generator, *, eta: float = 0.0
) -> Tensor:
    """x_prev = √ᾱ_prev x̂_0 + √(1-ᾱ_prev-σ_t²) ε̂ + σ_t z (Song et al. 2021, eq. 12).

    η = 0 is deterministic (Euler's method on the probability-flow ODE in VE coordinates);
    η = 1 is ancestral sampling with σ² = β̃ on the same grid.
    """
    if not 0.0 <= eta <= 1.0:
        raise ValueError(f"DDIM's eta must lie in [0, 1], got {eta}")
    for sigma, sigma_next in itertools.pairwise(grid):
        alpha_bar, alpha_bar_prev = alpha_bar_from_sigma(sigma), alpha_bar_from_sigma(sigma_next)
        x0_hat = run.denoise_vp(x, sigma)
        eps_hat = eps_from_x0(x, x0_hat, torch.tensor(alpha_bar, dtype=x.dtype, device=x.device))
        noise_scale = ddim_sigma(alpha_bar, alpha_bar_prev, eta)
        x = (
            alpha_bar_prev**0.5 * x0_hat
            + max(1 - alpha_bar_prev - noise_scale**2, 0.0) ** 0.5 * eps_hat
        )
        if noise_scale > 0:
            x = x + noise_scale * randn_like(x, generator)
        run.record(x)
    return x


ddim = Sampler(ddim_loop, "linspace")
"""DDIM, x_prev = √ᾱ_prev x̂_0 + √(1-ᾱ_prev-σ_t²) ε̂ + σ_t z (Song et al. 2021, eq. 12).

``ddim(denoiser, sigmas, x_T, eta=…, generator=…)``; default grid "linspace"; one denoiser call
per step, none extra.

Args:
    denoiser (Denoiser): D(x; σ) ≈ E[x_0 | x] for x = x_t/√ᾱ in VE coordinates, called on the
        whole batch with ``class_labels``; ε̂ is read from its x̂_0.
    sigmas (Tensor): the noise grid σ_0 > σ_1 > … > σ_N = 0, 1-D, descending and ending in 0
        (``build_grid``); N steps, read as float64 Python floats.
    x_T (Tensor): (B, …) standard normal noise, the VP prior N(0, I); the chain starts there.

Keyword Args:
    generator (Generator): the steps' noise z, drawn only when η > 0: a ``torch.Generator``, a
        ``PerSampleGenerator`` (row i from its own seed) or None (the default: PyTorch's
        global RNG).
    class_labels (Tensor | None): (B,) labels passed to every denoiser call; None (the default):
        unconditional.
    record_trajectory (bool): keep x_T, …, x_0 (VP coordinates, on the CPU) in the result's
        ``trajectory`` (False by default).
    callback (StepCallback | None): called as ``callback(steps done, N, x_t)`` after every
        step (x_t in VP coordinates); None (the default): no reports.
    eta (float): η in [0, 1], the noise σ_t(η) of eq. 16: 0 (the default) is deterministic,
        1 is ancestral sampling with σ² = β̃.

Returns:
    (SampleResult): x_0 (B, …), the trajectory when recorded, and nfe = N denoiser calls.
"""


@torch.no_grad()
def ddim_invert(
    denoiser: Denoiser,
    sigmas: Tensor,
    x0: Tensor,
    *,
    class_labels: Tensor | None = None,
    callback: StepCallback | None = None,
) -> Tensor:
    """Deterministic encoding x_0 → x_T: the η = 0 update run up the grid (Song et al. 2021, §4.3).

    x_0 is taken as the state at the grid's smallest non-zero level (the usual approximation), and
    every step uses ε̂ at the level it starts from. Decoding with ``ddim(…, eta=0)`` on the same
    grid reconstructs x_0 up to the discretisation error.

    Args:
        denoiser: D(x; σ) ≈ E[x_0 | x] for x = x_t/√ᾱ in VE coordinates.
        sigmas: the same descending grid σ_0 > … > σ_N = 0 the decoding uses; it is walked
            upwards from σ_{N-1} to σ_0 (N - 1 denoiser calls), σ = 0 unused.
        x0: (B, …) the data to encode.
        class_labels: (B,) labels passed to every denoiser call; None: unconditional.
        callback: called as ``callback(steps done, N - 1, x_t)`` after every step (x_t in VP
            coordinates); None (the default): no reports.

    Returns:
        (B, …) x_T at σ_0 in VP coordinates, the start to give ``ddim``.
    """
    grid = levels(sigmas)[:-1][::-1]  # increasing noise, without σ = 0
    run = SamplerRun(denoiser, class_labels, len(grid) - 1, callback=callback)
    x: Tensor = x0 * alpha_bar_from_sigma(grid[0]) ** 0.5
    for sigma, sigma_next in itertools.pairwise(grid):
        alpha_bar, alpha_bar_next = alpha_bar_from_sigma(sigma), alpha_bar_from_sigma(sigma_next)
        x0_hat = run.denoise_vp(x, sigma)
        eps_hat = eps_from_x0(x, x0_hat, torch.tensor(alpha_bar, dtype=x.dtype, device=x.device))
        x = alpha_bar_next**0.5 * x0_hat + (1 - alpha_bar_next) ** 0.5 * eps_hat
        run.record(x)
    return x
