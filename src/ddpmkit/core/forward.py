"""The forward (noising) process and its Gaussian posterior, as pure functions of a schedule."""

from __future__ import annotations

from torch import Tensor

from ddpmkit.core.schedules import NoiseSchedule


def q_sample(schedule: NoiseSchedule, x0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
    """x_t = √ᾱ_t x_0 + √(1-ᾱ_t) ε, a draw from q(x_t|x_0) (Ho et al. 2020, eq. 4).

    Args:
        schedule: the noise schedule whose float64 tables give √ᾱ_t and √(1-ᾱ_t).
        x0: (B, …) clean data x_0.
        t: (B,) 0-based steps (integer); row t is the paper's step t + 1.
        noise: ε, standard normal, shaped like ``x0``.

    Returns:
        (B, …) x_t in ``x0``'s dtype and device.
    """
    return (
        schedule.at(schedule.sqrt_alpha_bar, t, x0) * x0
        + schedule.at(schedule.sqrt_one_minus_alpha_bar, t, x0) * noise
    )


def q_step(schedule: NoiseSchedule, x_prev: Tensor, t: Tensor, noise: Tensor) -> Tensor:
    """x_t = √(1-β_t) x_{t-1} + √β_t ε, a draw from q(x_t|x_{t-1}) (Ho et al. 2020, eq. 2).

    Args:
        schedule: the noise schedule whose float64 table gives β_t.
        x_prev: (B, …) x_{t-1}, the state one step less noisy (x_0 at t = 0).
        t: (B,) 0-based steps (integer) of the step taken; row t is the paper's step t + 1.
        noise: ε, standard normal, shaped like ``x_prev``.

    Returns:
        (B, …) x_t in ``x_prev``'s dtype and device.
    """
    beta = schedule.at(schedule.betas, t, x_prev)
    return (1.0 - beta).sqrt() * x_prev + beta.sqrt() * noise


def posterior_mean(schedule: NoiseSchedule, x0: Tensor, x_t: Tensor, t: Tensor) -> Tensor:
    """μ̃_t(x_t, x_0), the mean of q(x_{t-1}|x_t, x_0) (Ho et al. 2020, eq. 7).

    Args:
        schedule: the noise schedule whose float64 tables give the coefficients of x_0 and x_t.
        x0: (B, …) x_0, the data or an estimate x̂_0 of it.
        x_t: (B, …) the noised state at step t, VP coordinates.
        t: (B,) 0-based steps (integer); row t is the paper's step t + 1.

    Returns:
        (B, …) μ̃_t in ``x_t``'s dtype and device.
    """
    return (
        schedule.at(schedule.posterior_mean_coef_x0, t, x_t) * x0
        + schedule.at(schedule.posterior_mean_coef_xt, t, x_t) * x_t
    )


def posterior_variance(schedule: NoiseSchedule, t: Tensor, like: Tensor) -> Tensor:
    """β̃_t = (1-ᾱ_{t-1})/(1-ᾱ_t)·β_t, the variance of q(x_{t-1}|x_t, x_0) (DDPM eq. 7).

    Args:
        schedule: the noise schedule whose float64 table gives β̃_t (β̃ = 0 at t = 0).
        t: (B,) 0-based steps (integer); row t is the paper's step t + 1.
        like: a (B, …) tensor whose dtype, device and number of dimensions the result takes.

    Returns:
        β̃_t shaped (B, 1, …, 1), to broadcast over ``like``.
    """
    return schedule.at(schedule.posterior_variance, t, like)
