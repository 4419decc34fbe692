"""Conversions among the network's possible outputs: ε, x_0, v, the score and the reverse mean.

The only place these identities live. ``alpha_bar`` is ᾱ_t, already broadcast against ``x_t``;
x_t = √ᾱ x_0 + √(1-ᾱ) ε throughout.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, TypeVar

from torch import Tensor

Parameterization = Literal["eps", "x0", "v"]
TensorOrFloat = TypeVar("TensorOrFloat", Tensor, float)
PARAMETERIZATIONS: tuple[Parameterization, ...] = ("eps", "x0", "v")


def x0_from_eps(x_t: Tensor, eps: Tensor, alpha_bar: Tensor) -> Tensor:
    """x_0 = (x_t - √(1-ᾱ) ε)/√ᾱ (Ho et al. 2020, eq. 4 solved for x_0)."""
    return (x_t - (1 - alpha_bar).sqrt() * eps) / alpha_bar.sqrt()


def eps_from_x0(x_t: Tensor, x0: Tensor, alpha_bar: Tensor) -> Tensor:
    """ε = (x_t - √ᾱ x_0)/√(1-ᾱ) (Ho et al. 2020, eq. 4 solved for ε)."""
    return (x_t - alpha_bar.sqrt() * x0) / (1 - alpha_bar).sqrt()


def v_from_x0_eps(x0: Tensor, eps: Tensor, alpha_bar: Tensor) -> Tensor:
    """v = √ᾱ ε - √(1-ᾱ) x_0 (Salimans & Ho 2022, §4)."""
    return alpha_bar.sqrt() * eps - (1 - alpha_bar).sqrt() * x0


def x0_from_v(x_t: Tensor, v: Tensor, alpha_bar: Tensor) -> Tensor:
    """x_0 = √ᾱ x_t - √(1-ᾱ) v (Salimans & Ho 2022, §4)."""
    return alpha_bar.sqrt() * x_t - (1 - alpha_bar).sqrt() * v


def eps_from_v(x_t: Tensor, v: Tensor, alpha_bar: Tensor) -> Tensor:
    """ε = √(1-ᾱ) x_t + √ᾱ v (Salimans & Ho 2022, §4)."""
    return (1 - alpha_bar).sqrt() * x_t + alpha_bar.sqrt() * v


def score_from_eps(eps: Tensor, alpha_bar: Tensor) -> Tensor:
    """∇ log q(x_t) ≈ -ε/√(1-ᾱ) (Song et al. 2021, eq. 4 with the VP perturbation kernel)."""
    return -eps / (1 - alpha_bar).sqrt()


def eps_from_score(score: Tensor, alpha_bar: Tensor) -> Tensor:
    """ε = -√(1-ᾱ)·score, the inverse of ``score_from_eps``."""
    return -(1 - alpha_bar).sqrt() * score


def reverse_mean_from_eps(x_t: Tensor, eps: Tensor, alpha: Tensor, alpha_bar: Tensor) -> Tensor:
    """μ_θ(x_t, t) = (x_t - β_t/√(1-ᾱ_t)·ε_θ)/√α_t (Ho et al. 2020, eq. 11)."""
    return (x_t - (1 - alpha) / (1 - alpha_bar).sqrt() * eps) / alpha.sqrt()


def _x0_from_x0(x_t: Tensor, x0: Tensor, alpha_bar: Tensor) -> Tensor:
    return x0


OutputToX0 = Callable[[Tensor, Tensor, Tensor], Tensor]
X0_FROM_OUTPUT: dict[Parameterization, OutputToX0] = {
    "eps": x0_from_eps,
    "x0": _x0_from_x0,
    "v": x0_from_v,
}
"""How to read x_0 from the network's output, per parameterization: f(x_t, output, ᾱ)."""


def training_target(
    parameterization: Parameterization, x0: Tensor, eps: Tensor, alpha_bar: Tensor
) -> Tensor:
    """What the network regresses onto: ε (Ho et al. 2020, Alg. 1), x_0, or v."""
    if parameterization == "eps":
        return eps
    if parameterization == "x0":
        return x0
    if parameterization == "v":
        return v_from_x0_eps(x0, eps, alpha_bar)
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
