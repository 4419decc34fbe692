"""Ancestral sampling of the reverse chain p_θ(x_{t-1}|x_t) (Ho et al. 2020, Algorithm 2)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor

from ddpmkit.denoisers import Denoiser
from ddpmkit.forward import posterior_mean
from ddpmkit.randomness import Generator, randn_like
from ddpmkit.samplers.common import SampleResult, Trajectory, clip_x0
from ddpmkit.schedules import NoiseSchedule

ReverseVariance = Literal["beta", "beta_tilde"]
StepCallback = Callable[[int, int, Tensor], None]


def reverse_variance_table(schedule: NoiseSchedule, variance: ReverseVariance) -> Tensor:
    """σ²_t = β_t or σ²_t = β̃_t, the paper's two fixed choices (Ho et al. 2020, §3.2)."""
    if variance == "beta":
        return schedule.betas
    if variance == "beta_tilde":
        return schedule.posterior_variance
    raise ValueError(f"unknown reverse variance {variance!r}; choose 'beta' or 'beta_tilde'")


@torch.no_grad()
def ddpm_ancestral(
    denoiser: Denoiser,
    schedule: NoiseSchedule,
    x_T: Tensor,
    *,
    variance: ReverseVariance = "beta_tilde",
    clip: tuple[float, float] | None = None,
    generator: Generator = None,
    class_labels: Tensor | None = None,
    record_trajectory: bool = False,
    callback: StepCallback | None = None,
) -> SampleResult:
    """Algorithm 2 of Ho et al. (2020): x_{t-1} = μ_θ(x_t, t) + σ_t z, with z = 0 at the last step.

    μ_θ is the posterior mean μ̃_t(x_t, x̂_0) (eq. 7) at the denoiser's x̂_0, which equals eq. 11
    when x̂_0 comes from ε_θ and is not clipped.
    """
    variances = reverse_variance_table(schedule, variance)
    x, trajectory = x_T, Trajectory.start(x_T, record_trajectory)
    for i, t in enumerate(range(schedule.num_steps - 1, -1, -1)):
        t_batch = torch.full((x.shape[0],), t, device=x.device, dtype=torch.long)
        sqrt_alpha_bar = float(schedule.sqrt_alpha_bar[t])
        x0_hat = clip_x0(denoiser(x / sqrt_alpha_bar, schedule.sigmas[t], class_labels), clip)
        mean = posterior_mean(schedule, x0_hat, x, t_batch)
        noise = randn_like(x, generator) if t > 0 else torch.zeros_like(x)
        x = mean + float(variances[t]) ** 0.5 * noise
        trajectory.append(x)
        if callback is not None:
            callback(i + 1, schedule.num_steps, x)
    return SampleResult(x, trajectory.states, nfe=schedule.num_steps)
