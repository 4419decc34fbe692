"""Time grids for sampling: decreasing noise levels σ_0 > σ_1 > … > σ_N = 0, float64.

Every sampler walks such a grid in variance-exploding units σ = √((1-ᾱ)/ᾱ) (ᾱ = 1/(1+σ²)). Grids on
the training steps respace the chain (Nichol & Dhariwal 2021, §4); continuous grids use noise levels
between the table's rows, which a network trained on discrete t sees as fractional t
(``NetworkDenoiser`` interpolates t linearly in log σ).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch import Tensor

from ddpmkit.core.schedules import NoiseSchedule

GridKind = Literal["linspace", "leading", "trailing", "uniform_t", "log_snr", "karras"]
GRID_KINDS: tuple[GridKind, ...] = (
    "linspace",
    "leading",
    "trailing",
    "uniform_t",
    "log_snr",
    "karras",
)


def respaced_timesteps(num_steps: int, steps: int, spacing: str = "linspace") -> list[int]:
    """``steps`` of the training steps 0 … T-1, largest first.

    "linspace": evenly spaced, both ends included (Improved DDPM's respacing); "leading":
    0, T/n, 2T/n, … (DDIM's); "trailing": T-1, T-1-T/n, … (Lin et al. 2024, Table 2).
    """
    if not 1 <= steps <= num_steps:
        raise ValueError(f"steps must lie in [1, T = {num_steps}], got {steps}")
    if spacing == "linspace":
        chosen = np.round(np.linspace(0, num_steps - 1, steps)).astype(int)
    elif spacing == "leading":
        chosen = np.arange(steps) * (num_steps // steps)
    elif spacing == "trailing":
        chosen = np.round(np.arange(num_steps, 0, -num_steps / steps)).astype(int) - 1
    else:
        raise ValueError(f"unknown timestep spacing {spacing!r}")
    return sorted({int(t) for t in chosen}, reverse=True)


def timestep_sigmas(schedule: NoiseSchedule, timesteps: list[int] | Tensor) -> Tensor:
    """The grid through the given training steps (any order, no repeats), then σ = 0."""
    t: Tensor = torch.unique(torch.as_tensor(timesteps, dtype=torch.long)).flip(0)
    if t.min() < 0 or t.max() >= schedule.num_steps:
        raise ValueError(f"timesteps must lie in [0, {schedule.num_steps - 1}]")
    return _append_zero(schedule.sigmas[t])


def uniform_t_sigmas(schedule: NoiseSchedule, steps: int) -> Tensor:
    """``steps`` levels uniform in continuous t from T-1 to 0 (Song et al. 2021's uniform time)."""
    t = torch.linspace(schedule.num_steps - 1, 0, steps, dtype=torch.float64)
    return _append_zero(schedule.t_to_sigma(t))


def log_snr_sigmas(schedule: NoiseSchedule, steps: int) -> Tensor:
    """``steps`` levels uniform in log-SNR = -2 log σ between the schedule's ends (Lu et al. 2022)."""
    lo, hi = schedule.sigmas[0].log(), schedule.sigmas[-1].log()
    return _append_zero(torch.linspace(float(hi), float(lo), steps, dtype=torch.float64).exp())


def karras_sigmas(sigma_min: float, sigma_max: float, steps: int, rho: float = 7.0) -> Tensor:
    """σ_i = (σ_max^{1/ρ} + i/(N-1)(σ_min^{1/ρ} - σ_max^{1/ρ}))^ρ (Karras et al. 2022, eq. 5).

    Args:
        sigma_min: σ_min > 0, the last non-zero level (VE units σ = √((1-ᾱ)/ᾱ)).
        sigma_max: σ_max, the first level.
        steps: N, the number of non-zero levels, i = 0 … N-1.
        rho: ρ, the warping; larger ρ spends more steps near σ_min (7 in the paper).

    Returns:
        (N + 1,) float64 σ_0 = σ_max > … > σ_{N-1} = σ_min > σ_N = 0.
    """
    ramp = torch.linspace(0, 1, steps, dtype=torch.float64)
    inv_max, inv_min = sigma_max ** (1 / rho), sigma_min ** (1 / rho)
    return _append_zero((inv_max + ramp * (inv_min - inv_max)) ** rho)


def build_grid(schedule: NoiseSchedule, kind: GridKind, steps: int, rho: float = 7.0) -> Tensor:
    """The grid of ``kind`` with ``steps`` noise levels (plus the final σ = 0).

    Args:
        schedule: the noise schedule whose levels σ_t = √((1-ᾱ_t)/ᾱ_t) the grid is built on.
        kind: "linspace", "leading" or "trailing" training steps (``respaced_timesteps``),
            "uniform_t" (continuous t), "log_snr" (uniform in log-SNR between the schedule's
            ends) or "karras" (``karras_sigmas`` from σ_T down to σ_1).
        steps: N ≥ 1, the number of non-zero levels; at most T for the training-step kinds.
        rho: ρ of the "karras" grid; ignored by the others.

    Returns:
        (N + 1,) float64 noise levels, decreasing, ending in σ = 0.
    """
    if steps < 1:
        raise ValueError(f"the number of sampling steps must be >= 1, got {steps}")
    if kind in ("linspace", "leading", "trailing"):
        return timestep_sigmas(schedule, respaced_timesteps(schedule.num_steps, steps, kind))
    if kind == "uniform_t":
        return uniform_t_sigmas(schedule, steps)
    if kind == "log_snr":
        return log_snr_sigmas(schedule, steps)
    if kind == "karras":
        return karras_sigmas(float(schedule.sigmas[0]), float(schedule.sigmas[-1]), steps, rho)
    raise ValueError(f"unknown grid {kind!r}; choose one of {', '.join(GRID_KINDS)}")


def _append_zero(sigmas: Tensor) -> Tensor:
    return torch.cat([sigmas.to(torch.float64), sigmas.new_zeros(1, dtype=torch.float64)])
