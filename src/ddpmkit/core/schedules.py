"""The noise schedule: β_t and every quantity derived from it, computed once in float64.

Index convention: row ``t`` (0-based, ``t = 0 … T-1``) holds the paper's step ``t + 1``, so
``alpha_bar[0] = α_1`` and ``alpha_bar[T-1] = ᾱ_T``. Networks are fed this 0-based ``t``, as in
improved-diffusion and diffusers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, overload

import torch
from torch import Tensor

ReverseVariance = Literal["auto", "beta", "beta_tilde", "learned"]
REVERSE_VARIANCES: tuple[ReverseVariance, ...] = ("auto", "beta", "beta_tilde", "learned")


@dataclass(frozen=True, eq=False)
class NoiseSchedule:
    """β_1 … β_T and its derived tables (Ho et al. 2020, eqs. 2–7); all float64, shape (T,).

    Build one with ``linear``, ``cosine``, ``sigmoid``, ``geometric``, ``from_sigmas`` or
    ``from_betas``; row t (0-based) of every table is the paper's step t + 1.

    Args:
        betas: (T,) β_1 … β_T, each in (0, 1), T ≥ 2; any float tensor, kept as float64 on
            the CPU.

    Attributes:
        alphas: α_t = 1 - β_t.
        alpha_bar: ᾱ_t = ∏_{s≤t} α_s.
        alpha_bar_prev: ᾱ_{t-1}, with ᾱ_0 = 1 in row 0.
        sqrt_alpha_bar: √ᾱ_t.
        sqrt_one_minus_alpha_bar: √(1-ᾱ_t).
        posterior_variance: β̃_t = (1-ᾱ_{t-1})/(1-ᾱ_t)·β_t (eq. 7); 0 in row 0.
        posterior_log_variance_clipped: log β̃_t with row 0 set to row 1 (β̃_1 = 0 has no log).
        posterior_mean_coef_x0: the coefficient of x_0 in μ̃_t(x_t, x_0) (eq. 7).
        posterior_mean_coef_xt: the coefficient of x_t in μ̃_t(x_t, x_0) (eq. 7).
        sigmas: σ_t = √((1-ᾱ_t)/ᾱ_t), the VE noise levels, increasing.
        log_snr: log(ᾱ_t/(1-ᾱ_t)) = -2 log σ_t.
    """

    betas: Tensor
    alphas: Tensor = field(init=False, repr=False)
    alpha_bar: Tensor = field(init=False, repr=False)
    alpha_bar_prev: Tensor = field(init=False, repr=False)
    sqrt_alpha_bar: Tensor = field(init=False, repr=False)
    sqrt_one_minus_alpha_bar: Tensor = field(init=False, repr=False)
    posterior_variance: Tensor = field(init=False, repr=False)
    posterior_log_variance_clipped: Tensor = field(init=False, repr=False)
    posterior_mean_coef_x0: Tensor = field(init=False, repr=False)
    posterior_mean_coef_xt: Tensor = field(init=False, repr=False)
    sigmas: Tensor = field(init=False, repr=False)
    log_snr: Tensor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        betas = _validated_betas(self.betas)
        alphas = 1.0 - betas
        alpha_bar = torch.cumprod(alphas, dim=0)
        alpha_bar_prev = torch.cat([alpha_bar.new_ones(1), alpha_bar[:-1]])
        coef_x0, coef_xt, posterior_variance = posterior_coefficients(alpha_bar, alpha_bar_prev)
        # β̃_1 = 0, so its log is clipped to β̃_2 as in improved-diffusion.
        clipped = torch.cat([posterior_variance[1:2], posterior_variance[1:]])[: len(betas)]
        tables = {
            "betas": betas,
            "alphas": alphas,
            "alpha_bar": alpha_bar,
            "alpha_bar_prev": alpha_bar_prev,
            "sqrt_alpha_bar": alpha_bar.sqrt(),
            "sqrt_one_minus_alpha_bar": (1.0 - alpha_bar).sqrt(),
            "posterior_variance": posterior_variance,
            "posterior_log_variance_clipped": clipped.clamp_min(1e-20).log(),
            "posterior_mean_coef_x0": coef_x0,
            "posterior_mean_coef_xt": coef_xt,
            "sigmas": ((1.0 - alpha_bar) / alpha_bar).sqrt(),
            "log_snr": alpha_bar.log() - (1.0 - alpha_bar).log(),
        }
        for name, value in tables.items():
            object.__setattr__(self, name, value)

    @property
    def num_steps(self) -> int:
        """T, the number of diffusion steps."""
        return len(self.betas)

    def at(self, table: Tensor, t: Tensor, like: Tensor) -> Tensor:
        """``table[t]`` in ``like``'s dtype and device, shaped (B, 1, …, 1) to broadcast over it."""
        values = table.to(like.device)[t.to(like.device).long()].to(like.dtype)
        return values.reshape(-1, *([1] * (like.ndim - 1)))

    def sigma_to_t(self, sigma: Tensor) -> Tensor:
        """Continuous t for a VE noise level σ = √((1-ᾱ)/ᾱ), linear in log σ between table rows."""
        log_sigmas = self.sigmas.log().to(sigma.device)
        log_sigma = sigma.to(torch.float64).clamp_min(1e-30).log()
        high = torch.searchsorted(log_sigmas, log_sigma).clamp(1, self.num_steps - 1)
        low = high - 1
        w = (log_sigma - log_sigmas[low]) / (log_sigmas[high] - log_sigmas[low])
        return (low + w.clamp(0.0, 1.0)).to(sigma.dtype)

    def t_to_sigma(self, t: Tensor) -> Tensor:
        """σ at a continuous t, linear in log σ between table rows (inverse of ``sigma_to_t``)."""
        log_sigmas = self.sigmas.log().to(t.device)
        t64 = t.to(torch.float64).clamp(0, self.num_steps - 1)
        low = t64.floor().long().clamp(max=self.num_steps - 2)
        w = t64 - low
        return ((1 - w) * log_sigmas[low] + w * log_sigmas[low + 1]).exp().to(t.dtype)

    @classmethod
    def linear(
        cls, num_steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02
    ) -> NoiseSchedule:
        """Linear β (Ho et al. 2020, §4), range scaled by 1000/T as in Nichol & Dhariwal (2021).

        The paper's range is for T = 1000; for another T the endpoints are multiplied by 1000/T
        so that ᾱ_T, and hence the process, stays about the same when T changes.
        """
        _check_num_steps(num_steps)
        scale = 1000.0 / num_steps
        if beta_end * scale >= 1.0:
            raise ValueError(
                f"linear schedule with T = {num_steps}: β_T rescaled by 1000/T is "
                f"{beta_end * scale:g} >= 1; use more steps or the cosine schedule"
            )
        return cls(
            torch.linspace(beta_start * scale, beta_end * scale, num_steps, dtype=torch.float64)
        )

    @classmethod
    def cosine(
        cls, num_steps: int = 1000, s: float = 0.008, max_beta: float = 0.999
    ) -> NoiseSchedule:
        """ᾱ(t) = cos²((t/T + s)/(1 + s)·π/2), β clipped at 0.999 (Nichol & Dhariwal 2021, eq. 17)."""
        _check_num_steps(num_steps)
        steps = torch.arange(num_steps + 1, dtype=torch.float64) / num_steps
        f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
        return cls.from_alpha_bar_curve(f / f[0], max_beta)

    @classmethod
    def sigmoid(
        cls,
        num_steps: int = 1000,
        start: float = -3.0,
        end: float = 3.0,
        tau: float = 1.0,
        max_beta: float = 0.999,
    ) -> NoiseSchedule:
        """ᾱ(t) from a rescaled sigmoid (Chen 2023, "On the importance of noise scheduling")."""
        _check_num_steps(num_steps)
        steps = torch.arange(num_steps + 1, dtype=torch.float64) / num_steps
        v_start = torch.sigmoid(torch.tensor(start / tau, dtype=torch.float64))
        v_end = torch.sigmoid(torch.tensor(end / tau, dtype=torch.float64))
        f = (v_end - torch.sigmoid((steps * (end - start) + start) / tau)) / (v_end - v_start)
        return cls.from_alpha_bar_curve(f, max_beta)

    @classmethod
    def from_alpha_bar_curve(cls, alpha_bar: Tensor, max_beta: float = 0.999) -> NoiseSchedule:
        """β_t = min(1 - ᾱ(t)/ᾱ(t-1), max_beta) from ᾱ on T+1 points with ᾱ(0) = 1."""
        alpha_bar = alpha_bar.to(torch.float64)
        betas = 1.0 - alpha_bar[1:] / alpha_bar[:-1]
        return cls(betas.clamp(max=max_beta))

    @classmethod
    def from_sigmas(cls, sigmas: Tensor) -> NoiseSchedule:
        """The schedule whose VE noise levels are σ_1 < … < σ_T: ᾱ_t = 1/(1 + σ_t²).

        Every diffusion x_t = s(t)(x_0 + σ(t)ε) is this one up to the scale s(t) (Karras et al.
        2022, eq. 4); ddpmkit's denoisers and samplers work in VE coordinates, where only σ(t)
        matters, so a process is its table of σ.
        """
        sigmas = torch.as_tensor(sigmas, dtype=torch.float64)
        if not bool((sigmas[1:] > sigmas[:-1]).all()) or float(sigmas[0]) <= 0:
            raise ValueError("noise levels σ_1 < … < σ_T must be positive and increasing")
        alpha_bar = torch.cat([sigmas.new_ones(1), 1.0 / (1.0 + sigmas**2)])
        return cls.from_alpha_bar_curve(alpha_bar, max_beta=1.0)

    @classmethod
    def geometric(cls, num_steps: int, sigma_min: float, sigma_max: float) -> NoiseSchedule:
        """NCSN's noise levels: σ_min … σ_max in geometric progression (Song & Ermon 2019, §4.2)."""
        _check_num_steps(num_steps)
        if not 0 < sigma_min < sigma_max:
            raise ValueError(f"need 0 < σ_min < σ_max, got {sigma_min}, {sigma_max}")
        ratio = torch.linspace(0.0, 1.0, num_steps, dtype=torch.float64)
        return cls.from_sigmas(sigma_min * (sigma_max / sigma_min) ** ratio)

    def sub_vp(self) -> NoiseSchedule:
        """The sub-VP process of these β: x_t = √ᾱ_t x_0 + (1 - ᾱ_t) ε (Song et al. 2021, eq. 29),
        i.e. σ_t = (1 - ᾱ_t)/√ᾱ_t."""
        return NoiseSchedule.from_sigmas((1.0 - self.alpha_bar) / self.alpha_bar.sqrt())

    @classmethod
    def from_betas(cls, betas: Tensor | list[float] | tuple[float, ...]) -> NoiseSchedule:
        """A schedule from user-given β_1 … β_T."""
        return cls(torch.as_tensor(betas, dtype=torch.float64))


@overload
def posterior_coefficients(
    alpha_bar: float, alpha_bar_prev: float
) -> tuple[float, float, float]: ...
@overload
def posterior_coefficients(
    alpha_bar: Tensor, alpha_bar_prev: Tensor | float
) -> tuple[Tensor, Tensor, Tensor]: ...
@overload
def posterior_coefficients(
    alpha_bar: Tensor | float, alpha_bar_prev: Tensor
) -> tuple[Tensor, Tensor, Tensor]: ...
@overload
def posterior_coefficients(
    alpha_bar: Tensor | float, alpha_bar_prev: Tensor | float
) -> tuple[Tensor | float, Tensor | float, Tensor | float]: ...
def posterior_coefficients(
    alpha_bar: Tensor | float, alpha_bar_prev: Tensor | float
) -> tuple[Tensor | float, Tensor | float, Tensor | float]:
    """μ̃ = c_x0·x_0 + c_xt·x_t and β̃ of q(x_prev|x_t, x_0) between any two levels (DDPM eqs. 6–7).

    With β = 1 - ᾱ/ᾱ_prev: c_x0 = √ᾱ_prev·β/(1-ᾱ), c_xt = √(1-β)(1-ᾱ_prev)/(1-ᾱ) and
    β̃ = β(1-ᾱ_prev)/(1-ᾱ); for a respaced chain ᾱ_prev is the next level of the grid.
    """
    beta = 1.0 - alpha_bar / alpha_bar_prev
    coef_x0 = alpha_bar_prev**0.5 * beta / (1.0 - alpha_bar)
    coef_xt = (1.0 - beta) ** 0.5 * (1.0 - alpha_bar_prev) / (1.0 - alpha_bar)
    return coef_x0, coef_xt, beta * (1.0 - alpha_bar_prev) / (1.0 - alpha_bar)


def interpolated_log_variance(
    v: Tensor, log_beta: Tensor | float, log_beta_tilde: Tensor | float
) -> Tensor:
    """log Σ_θ = v log β_t + (1 - v) log β̃_t (Nichol & Dhariwal 2021, eq. 15)."""
    return v * log_beta + (1.0 - v) * log_beta_tilde


def check_variance(variance: str) -> None:
    """Raise a clear error for a reverse-variance name that is not one of ``REVERSE_VARIANCES``."""
    if variance not in REVERSE_VARIANCES:
        raise ValueError(
            f"unknown reverse variance {variance!r}; choose one of {', '.join(REVERSE_VARIANCES)}"
        )


def choose_log_variance(
    variance: ReverseVariance,
    v: Tensor | None,
    log_beta: Tensor | float,
    log_beta_tilde: Tensor | float,
) -> Tensor | float:
    """log σ_t² of p_θ(x_{t-1}|x_t): log β_t, log β̃_t (Ho et al. 2020, §3.2) or log Σ_θ (eq. 15).

    "auto" is the learned Σ_θ when the network gives v, else β̃; "learned" insists on v.
    """
    check_variance(variance)
    if variance == "learned" and v is None:
        raise ValueError(
            "variance 'learned' needs a network trained with diffusion.learned_variance = true"
        )
    if v is not None and variance in ("auto", "learned"):
        return interpolated_log_variance(v, log_beta, log_beta_tilde)
    return log_beta if variance == "beta" else log_beta_tilde


def _check_num_steps(num_steps: int) -> None:
    if not isinstance(num_steps, int) or num_steps < 2:
        raise ValueError(f"number of diffusion steps T must be an integer >= 2, got {num_steps!r}")


def _validated_betas(betas: Tensor) -> Tensor:
    if not isinstance(betas, Tensor):
        raise TypeError(f"betas must be a tensor, got {type(betas).__name__}")
    betas = betas.detach().to(torch.float64).cpu()
    if betas.ndim != 1 or len(betas) < 2:
        raise ValueError(
            f"betas must be a 1-D sequence of length >= 2, got shape {tuple(betas.shape)}"
        )
    if not torch.isfinite(betas).all():
        raise ValueError("betas contain non-finite values (nan or inf)")
    bad = ((betas <= 0) | (betas >= 1)).nonzero().flatten()
    if len(bad):
        i = int(bad[0])
        raise ValueError(f"every beta must lie in (0, 1); beta[{i}] = {float(betas[i])!r}")
    return betas
