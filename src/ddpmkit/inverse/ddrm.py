"""Denoising diffusion restoration models for linear y = A x_0 + n (Kawar et al. 2022).

DDRM samples in the spectral coordinates x̄ = Vᵀx of A = U diag(s) Vᵀ, where the measurement
reads ȳ = diag(s)⁻¹Uᵀy = x̄_0 + noise of std σ_y/s_i on each measured coordinate; it works in
VE coordinates x = x_0 + σε, as its equations are written.
"""

from __future__ import annotations

import itertools

import torch
from torch import Tensor

from ddpmkit.core.randomness import Generator, randn_like
from ddpmkit.inverse.spectral import SpectralOperator
from ddpmkit.samplers.common import Sampler, SamplerRun


def ddrm_loop(
    run: SamplerRun,
    grid: list[float],
    x: Tensor,
    generator: Generator,
    measurement: Tensor,
    operator: SpectralOperator,
    *,
    noise_std: float = 0.0,
    eta: float = 0.85,
    eta_b: float = 1.0,
) -> Tensor:
    """The DDRM chain (Kawar et al. 2022, eqs. 7–8), per spectral coordinate i at σ_t → σ_{t-1}:

    unmeasured (s_i = 0):      x̄' = x̂̄_0 + √(1-η²) σ_{t-1}(x̄ - x̂̄_0)/σ_t + η σ_{t-1} z;
    σ_{t-1} < σ_y/s_i:         x̄' = x̂̄_0 + √(1-η²) σ_{t-1}(ȳ - x̂̄_0)/(σ_y/s_i) + η σ_{t-1} z;
    σ_{t-1} ≥ σ_y/s_i:         x̄' = (1-η_b) x̂̄_0 + η_b ȳ + √(σ_{t-1}² - η_b² σ_y²/s_i²) z;

    started at x̄_T = ȳ + √(σ_T² - σ_y²/s_i²) z on measured coordinates with σ_y/s_i < σ_T
    (eq. 7); coordinates measured more noisily than σ_T (a blur's tiny s_i under noise) are
    treated as unmeasured, from plain noise on.
    """
    if not (0.0 <= eta <= 1.0 and 0.0 <= eta_b <= 1.0) or noise_std < 0:
        raise ValueError(
            f"DDRM needs η, η_b in [0, 1] and σ_y >= 0, got {eta}, {eta_b}, {noise_std}"
        )
    rank = operator.rank
    y_bar = operator.measured(measurement).to(x)
    level = noise_std / operator.s.to(x)  # σ_y/s_i of each measured coordinate
    x_bar = operator.to_spectral(x)
    start = grid[0]
    informative = level < start  # the others are noisier than x_T itself: left free (s_i ≈ 0)
    z = x_bar[:, :rank] / (1.0 + start**2) ** 0.5  # the sampler's standard normal start
    started = y_bar + (start**2 - level**2).clamp_min(0.0).sqrt() * z
    x_bar = torch.cat([torch.where(informative, started, x_bar[:, :rank]), x_bar[:, rank:]], dim=1)
    for sigma, sigma_next in itertools.pairwise(grid):
        x0_bar = operator.to_spectral(run.denoise(operator.from_spectral(x_bar), sigma))
        noise = randn_like(x_bar, generator)
        keep = (1.0 - eta**2) ** 0.5 * sigma_next
        free = x0_bar + keep * (x_bar - x0_bar) / sigma + eta * sigma_next * noise
        m0, m_noise = x0_bar[:, :rank], noise[:, :rank]
        below = m0 + keep * (y_bar - m0) / level.clamp_min(1e-30) + eta * sigma_next * m_noise
        above_var = (sigma_next**2 - eta_b**2 * level**2).clamp_min(0.0)
        above = (1.0 - eta_b) * m0 + eta_b * y_bar + above_var.sqrt() * m_noise
        measured = torch.where(sigma_next < level, below, above)
        measured = torch.where(informative, measured, free[:, :rank])
        x_bar = torch.cat([measured, free[:, rank:]], dim=1)
        run.record_ve(operator.from_spectral(x_bar), sigma_next)
    return operator.from_spectral(x_bar)


ddrm = Sampler(ddrm_loop, "linspace", ve=True)
"""DDRM: ``ddrm(denoiser, sigmas, x_T, measurement, SpectralOperator.of(A, shape), noise_std=σ_y,
eta=0.85, eta_b=1.0, generator=…)``.

The chain of eqs. 7–8 (Kawar et al. 2022) in the spectral coordinates of A and VE coordinates;
default grid "linspace"; one denoiser call per step, none extra.

Args:
    denoiser (Denoiser): D(x; σ) ≈ E[x_0 | x] for x = x_t/√ᾱ in VE coordinates, called on the
        whole batch with ``class_labels``.
    sigmas (Tensor): the noise grid σ_0 > σ_1 > … > σ_N = 0, 1-D, descending and ending in 0
        (``build_grid``); N steps, read as float64 Python floats.
    x_T (Tensor): (B, …) standard normal noise, the VP prior N(0, I); the loop starts from
        x = x_T·√(1 + σ_0²), its measured coordinates from ȳ plus x_T's own noise (eq. 7).
    measurement (Tensor): y = A x_0 + n, (B, K) or shaped like A's output for the batch.
    operator (SpectralOperator): A = U diag(s) Vᵀ, ``SpectralOperator.of(A, shape)``.

Keyword Args:
    generator (Generator): the steps' noise z: a ``torch.Generator``, a
        ``PerSampleGenerator`` (row i from its own seed) or None (the default: PyTorch's
        global RNG).
    class_labels (Tensor | None): (B,) labels passed to every denoiser call; None (the default):
        unconditional.
    record_trajectory (bool): keep x_T, …, x_0 (VP coordinates, on the CPU) in the result's
        ``trajectory`` (False by default).
    callback (StepCallback | None): called as ``callback(steps done, N, x_t)`` after every
        step (x_t in VP coordinates); None (the default): no reports.
    noise_std (float): σ_y ≥ 0, the standard deviation of n (0 by default: exact measurements).
    eta (float): η in [0, 1], the noise of the unmeasured coordinates and of those measured
        more noisily than σ_{t-1} (0.85 by default, the paper's).
    eta_b (float): η_b in [0, 1], the weight of ȳ where σ_{t-1} ≥ σ_y/s_i (1 by default).

Returns:
    (SampleResult): x_0 (B, …), the trajectory when recorded, and nfe = N denoiser calls.
"""
