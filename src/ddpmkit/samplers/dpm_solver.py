"""DPM-Solver++ multistep solvers of the probability-flow ODE in data prediction (Lu et al. 2022b).

In VE coordinates (α = 1) with λ = -log σ and h = λ_next - λ, the exact solution
x_next = (σ_next/σ) x + σ_next ∫ e^λ x̂_0 dλ is approximated by a Taylor expansion of x̂_0 in λ
whose derivatives come from the previous steps' x̂_0 (Lu et al. 2022b, eqs. 9–10 and Algorithm 2).
The history is a local list, the last step to σ = 0 returns x̂_0.
"""

from __future__ import annotations

import itertools
import math

from torch import Tensor

from ddpmkit.core.randomness import Generator
from ddpmkit.samplers.common import Sampler, SamplerRun


def dpmpp_update(
    x: Tensor, sigma: float, sigma_next: float, history: list[tuple[float, Tensor]], order: int
) -> Tensor:
    """One DPM-Solver++ step of order ≤ 3 from the newest (λ, x̂_0) pairs in ``history``."""
    lam, lam_next = -math.log(sigma), -math.log(sigma_next)
    h = lam_next - lam
    phi_1 = math.expm1(-h)  # e^{-h} - 1
    (l0, m0), *older = history[::-1]
    x_next = (sigma_next / sigma) * x - phi_1 * m0  # first order (DDIM)
    if order >= 2 and older:
        l1, m1 = older[0]
        r0 = (l0 - l1) / h
        d1_0 = (m0 - m1) / r0
        if order == 2 or len(older) < 2:
            return x_next - 0.5 * phi_1 * d1_0  # 2M (Lu et al. 2022b, Algorithm 2)
        l2, m2 = older[1]
        r1 = (l1 - l2) / h
        d1_1 = (m1 - m2) / r1
        d1 = d1_0 + r0 / (r0 + r1) * (d1_0 - d1_1)
        d2 = (d1_0 - d1_1) / (r0 + r1)
        phi_2 = phi_1 / h + 1
        phi_3 = phi_2 / h - 0.5
        return x_next + phi_2 * d1 - phi_3 * d2  # 3M
    return x_next


def dpmpp_loop(
    run: SamplerRun, grid: list[float], x: Tensor, generator: Generator, *, order: int
) -> Tensor:
    """Multistep DPM-Solver++ of ``order`` 2 or 3 over the grid; x̂_0 at the step to σ = 0."""
    history: list[tuple[float, Tensor]] = []
    for sigma, sigma_next in itertools.pairwise(grid):
        x0_hat = run.denoise(x, sigma)
        history = [*history[-(order - 1) :], (-math.log(sigma), x0_hat)]
        x = x0_hat if sigma_next == 0 else dpmpp_update(x, sigma, sigma_next, history, order)
        run.record_ve(x, sigma_next)
    return x


def dpmpp_2m_loop(run: SamplerRun, grid: list[float], x: Tensor, generator: Generator) -> Tensor:
    """DPM-Solver++(2M): second-order multistep (Lu et al. 2022b, Algorithm 2)."""
    return dpmpp_loop(run, grid, x, generator, order=2)


def dpmpp_3m_loop(run: SamplerRun, grid: list[float], x: Tensor, generator: Generator) -> Tensor:
    """DPM-Solver++(3M): third-order multistep (Lu et al. 2022b, App. B; lower order at the start)."""
    return dpmpp_loop(run, grid, x, generator, order=3)


dpmpp_2m = Sampler(dpmpp_2m_loop, "log_snr", ve=True)
"""DPM-Solver++(2M): second-order multistep in data prediction (Lu et al. 2022b, Algorithm 2).

``dpmpp_2m(denoiser, sigmas, x_T)``; default grid "log_snr"; one denoiser call per step, none
extra; no options. The first step is first order (DDIM); the step to σ = 0 returns x̂_0.

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
dpmpp_3m = Sampler(dpmpp_3m_loop, "log_snr", ve=True)
"""DPM-Solver++(3M): third-order multistep in data prediction (Lu et al. 2022b, App. B).

``dpmpp_3m(denoiser, sigmas, x_T)``; default grid "log_snr"; one denoiser call per step, none
extra; no options. The first two steps are of order 1 and 2; the step to σ = 0 returns x̂_0.

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
