"""Conversions among the network's possible outputs: ε, x_0, v, the score and the reverse mean.

The only place these identities live. ``alpha_bar`` is ᾱ_t, already broadcast against ``x_t``;
x_t = √ᾱ x_0 + √(1-ᾱ) ε throughout. The five ways to model p(x_{t-1}|x_t) (Luo 2022, §2–3;
Ho et al. 2020, §3.2) differ in what the network outputs: the posterior mean μ̃ itself
(``mean``), x_0, ε, the score ∇log q(x_t), or v. Each is read as x̂_0 by ``X0_FROM_OUTPUT``;
``mean`` also needs ᾱ_{t-1}, the level the step goes to.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, TypeVar

from torch import Tensor

from ddpmkit.core.schedules import posterior_coefficients

Parameterization = Literal["eps", "x0", "v", "score", "mean"]
TensorOrFloat = TypeVar("TensorOrFloat", Tensor, float)
PARAMETERIZATIONS: tuple[Parameterization, ...] = ("eps", "x0", "v", "score", "mean")


def x0_from_eps(x_t: Tensor, eps: Tensor, alpha_bar: Tensor) -> Tensor:
    """x_0 = (x_t - √(1-ᾱ) ε)/√ᾱ (Ho et al. 2020, eq. 4 solved for x_0).

    Args:
        x_t: the noised state, VP coordinates.
        eps: ε, or a network's estimate ε̂, shaped like ``x_t``.
        alpha_bar: ᾱ_t, broadcastable against ``x_t``.
    """
    return (x_t - (1 - alpha_bar).sqrt() * eps) / alpha_bar.sqrt()


def eps_from_x0(x_t: Tensor, x0: Tensor, alpha_bar: Tensor) -> Tensor:
    """ε = (x_t - √ᾱ x_0)/√(1-ᾱ) (Ho et al. 2020, eq. 4 solved for ε).

    Args:
        x_t: the noised state, VP coordinates.
        x0: x_0, or an estimate x̂_0, shaped like ``x_t``.
        alpha_bar: ᾱ_t, broadcastable against ``x_t``; ᾱ < 1 (at ᾱ = 1 there is no noise).
    """
    return (x_t - alpha_bar.sqrt() * x0) / (1 - alpha_bar).sqrt()


def v_from_x0_eps(x0: Tensor, eps: Tensor, alpha_bar: Tensor) -> Tensor:
    """v = √ᾱ ε - √(1-ᾱ) x_0 (Salimans & Ho 2022, §4).

    Args:
        x0: the clean data x_0.
        eps: the noise ε of x_t, shaped like ``x0``.
        alpha_bar: ᾱ_t, broadcastable against ``x0``.
    """
    return alpha_bar.sqrt() * eps - (1 - alpha_bar).sqrt() * x0


def x0_from_v(x_t: Tensor, v: Tensor, alpha_bar: Tensor) -> Tensor:
    """x_0 = √ᾱ x_t - √(1-ᾱ) v (Salimans & Ho 2022, §4).

    Args:
        x_t: the noised state, VP coordinates.
        v: v, or a network's estimate v̂, shaped like ``x_t``.
        alpha_bar: ᾱ_t, broadcastable against ``x_t``.
    """
    return alpha_bar.sqrt() * x_t - (1 - alpha_bar).sqrt() * v


def eps_from_v(x_t: Tensor, v: Tensor, alpha_bar: Tensor) -> Tensor:
    """ε = √(1-ᾱ) x_t + √ᾱ v (Salimans & Ho 2022, §4).

    Args:
        x_t: the noised state, VP coordinates.
        v: v, or a network's estimate v̂, shaped like ``x_t``.
        alpha_bar: ᾱ_t, broadcastable against ``x_t``.
    """
    return (1 - alpha_bar).sqrt() * x_t + alpha_bar.sqrt() * v


def score_from_eps(eps: Tensor, alpha_bar: Tensor) -> Tensor:
    """∇ log q(x_t) ≈ -ε/√(1-ᾱ) (Song et al. 2021, eq. 4 with the VP perturbation kernel).

    Args:
        eps: ε, or a network's estimate ε̂ (then the result is the model's score).
        alpha_bar: ᾱ_t, broadcastable against ``eps``; ᾱ < 1.
    """
    return -eps / (1 - alpha_bar).sqrt()


def eps_from_score(score: Tensor, alpha_bar: Tensor) -> Tensor:
    """ε = -√(1-ᾱ)·score, the inverse of ``score_from_eps``.

    Args:
        score: ∇ log q(x_t), or a network's estimate of it, VP coordinates.
        alpha_bar: ᾱ_t, broadcastable against ``score``.
    """
    return -(1 - alpha_bar).sqrt() * score


def x0_from_score(x_t: Tensor, score: Tensor, alpha_bar: Tensor) -> Tensor:
    """x_0 = (x_t + (1-ᾱ)·∇log q(x_t))/√ᾱ: Tweedie's formula (Luo 2022, eq. 133).

    Args:
        x_t: the noised state, VP coordinates.
        score: ∇ log q(x_t), or a network's estimate of it, shaped like ``x_t``.
        alpha_bar: ᾱ_t, broadcastable against ``x_t``.
    """
    return (x_t + (1 - alpha_bar) * score) / alpha_bar.sqrt()


def mean_from_x0(x_t: Tensor, x0: Tensor, alpha_bar: Tensor, alpha_bar_prev: Tensor) -> Tensor:
    """μ̃(x_t, x_0) = c_x0·x_0 + c_xt·x_t, the mean of q(x_{t-1}|x_t, x_0) (Ho et al. 2020, eq. 7)."""
    coef_x0, coef_xt, _ = posterior_coefficients(alpha_bar, alpha_bar_prev)
    return coef_x0 * x0 + coef_xt * x_t


def x0_from_mean(x_t: Tensor, mean: Tensor, alpha_bar: Tensor, alpha_bar_prev: Tensor) -> Tensor:
    """x_0 = (μ - c_xt·x_t)/c_x0, ``mean_from_x0`` solved for x_0 (c_x0 > 0 for ᾱ_t < ᾱ_{t-1})."""
    coef_x0, coef_xt, _ = posterior_coefficients(alpha_bar, alpha_bar_prev)
    return (mean - coef_xt * x_t) / coef_x0


def reverse_mean_from_eps(x_t: Tensor, eps: Tensor, alpha: Tensor, alpha_bar: Tensor) -> Tensor:
    """μ_θ(x_t, t) = (x_t - β_t/√(1-ᾱ_t)·ε_θ)/√α_t (Ho et al. 2020, eq. 11)."""
    return (x_t - (1 - alpha) / (1 - alpha_bar).sqrt() * eps) / alpha.sqrt()


OutputToX0 = Callable[[Tensor, Tensor, Tensor, Tensor | None], Tensor]
X0_FROM_OUTPUT: dict[Parameterization, OutputToX0] = {
    "eps": lambda x_t, out, alpha_bar, _prev: x0_from_eps(x_t, out, alpha_bar),
    "x0": lambda _x_t, out, _alpha_bar, _prev: out,
    "v": lambda x_t, out, alpha_bar, _prev: x0_from_v(x_t, out, alpha_bar),
    "score": lambda x_t, out, alpha_bar, _prev: x0_from_score(x_t, out, alpha_bar),
    "mean": lambda x_t, out, alpha_bar, prev: x0_from_mean(x_t, out, alpha_bar, _given(prev)),
}
"""How to read x_0 from the network's output, per parameterization: f(x_t, output, ᾱ, ᾱ_prev)."""


def _given(alpha_bar_prev: Tensor | None) -> Tensor:
    if alpha_bar_prev is None:
        raise ValueError("the μ̃ parameterization needs ᾱ_{t-1}")
    return alpha_bar_prev


def training_target(
    parameterization: Parameterization,
    x0: Tensor,
    eps: Tensor,
    x_t: Tensor,
    alpha_bar: Tensor,
    alpha_bar_prev: Tensor | None,
) -> Tensor:
    """What the network regresses onto: ε (Ho et al. 2020, Alg. 1), x_0, v, the score
    ∇log q(x_t|x_0) = -ε/√(1-ᾱ) (Song et al. 2021, eq. 4) or μ̃(x_t, x_0) (Ho et al. 2020, eq. 7)."""
    if parameterization == "eps":
        return eps
    if parameterization == "x0":
        return x0
    if parameterization == "v":
        return v_from_x0_eps(x0, eps, alpha_bar)
    if parameterization == "score":
        return score_from_eps(eps, alpha_bar)
    if parameterization == "mean":
        return mean_from_x0(x_t, x0, alpha_bar, _given(alpha_bar_prev))
    raise ValueError(
        f"unknown parameterization {parameterization!r}; choose one of {PARAMETERIZATIONS}"
    )


def split_output(output: Tensor, learned_variance: bool) -> tuple[Tensor, Tensor | None]:
    """The mean channels and v = (r + 1)/2 of a network that also outputs r for Σ_θ.

    The second half of the channels (dim 1) holds r; v interpolates log β and log β̃ (Nichol &
    Dhariwal 2021, eq. 15), unconstrained as in the paper. Without learned variances v is None.
    """
    if not learned_variance:
        return output, None
    mean_output, raw = output.chunk(2, dim=1)
    return mean_output, (raw + 1.0) / 2.0


def alpha_bar_from_sigma(sigma: TensorOrFloat) -> TensorOrFloat:
    """ᾱ = 1/(1 + σ²): the VP signal level of the VE noise level σ = √((1-ᾱ)/ᾱ)."""
    return 1.0 / (1.0 + sigma**2)
