"""The forward (noising) process and its Gaussian posterior, as pure functions of a schedule."""

from __future__ import annotations

from torch import Tensor

from ddpmkit.core.schedules import NoiseSchedule


def q_sample(schedule: NoiseSchedule, x0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
    """x_t = √ᾱ_t x_0 + √(1-ᾱ_t) ε, a draw from q(x_t|x_0) (Ho et al. 2020, eq. 4)."""
    return (
        schedule.at(schedule.sqrt_alpha_bar, t, x0) * x0
        + schedule.at(schedule.sqrt_one_minus_alpha_bar, t, x0) * noise
    )


def q_step(schedule: NoiseSchedule, x_prev: Tensor, t: Tensor, noise: Tensor) -> Tensor:
    """x_t = √(1-β_t) x_{t-1} + √β_t ε, a draw from q(x_t|x_{t-1}) (Ho et al. 2020, eq. 2)."""
    beta = schedule.at(schedule.betas, t, x_prev)
    return (1.0 - beta).sqrt() * x_prev + beta.sqrt() * noise


def posterior_mean(schedule: NoiseSchedule, x0: Tensor, x_t: Tensor, t: Tensor) -> Tensor:
    """μ̃_t(x_t, x_0), the mean of q(x_{t-1}|x_t, x_0) (Ho et al. 2020, eq. 7)."""
    return (
        schedule.at(schedule.posterior_mean_coef_x0, t, x_t) * x0
        + schedule.at(schedule.posterior_mean_coef_xt, t, x_t) * x_t
    )


def posterior_variance(schedule: NoiseSchedule, t: Tensor, like: Tensor) -> Tensor:
    """β̃_t = (1-ᾱ_{t-1})/(1-ᾱ_t)·β_t, the variance of q(x_{t-1}|x_t, x_0) (DDPM eq. 7)."""
    return schedule.at(schedule.posterior_variance, t, like)
