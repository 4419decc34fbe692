"""Exactness testbeds: data whose noised marginals p_σ are known in closed form.

For such data the optimal denoiser D*(x; σ) = E[x_0 | x_0 + σε = x] is exact, so every error a
sampler makes with it is the sampler's own (discretisation, not learning). By Tweedie's formula
(Efron 2011; Karras et al. 2022, eq. 3) D*(x; σ) = x + σ²∇_x log p_σ(x), and for a Gaussian mixture
p_σ = Σ_k π_k N(m_k, (s_k² + σ²)I) this is the responsibility-weighted sum of per-component
Gaussian conditionings (Karras et al. 2022, App. B.3, for the idealised denoiser of a finite set).

All distributions work in float64 on (B, D) batches, in variance-exploding coordinates
x = x_t/√ᾱ_t = x_0 + σε (see ``ddpmkit.core.denoisers``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Protocol

import torch
from torch import Tensor

from ddpmkit.core.analytic import GaussianDenoiser
from ddpmkit.core.denoisers import Denoiser, per_sample_sigma
from ddpmkit.core.schedules import NoiseSchedule

LOG_2PI = math.log(2.0 * math.pi)


class ExactDistribution(Protocol):
    """Data x_0 ∈ R^D we can sample, whose noised density and optimal denoiser are exact."""

    @property
    def dim(self) -> int: ...

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor: ...

    def log_density(self, x: Tensor, sigma: Tensor | float) -> Tensor: ...

    def denoiser(self) -> Denoiser: ...


class Gaussian:
    """x_0 ~ N(m, S); p_σ = N(m, S + σ²I). ``mean`` is (D,), ``cov`` (D, D) positive definite."""

    def __init__(self, mean: Tensor, cov: Tensor) -> None:
        self.mean = mean.to(torch.float64)
        self.cov = cov.to(torch.float64)
        self.eigenvalues: Tensor
        self.eigenvectors: Tensor
        self.eigenvalues, self.eigenvectors = torch.linalg.eigh(self.cov)

    @property
    def dim(self) -> int:
        return self.mean.shape[0]

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """(n, D) draws m + U diag(√λ) z with S = U diag(λ) Uᵀ."""
        z = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        return self.mean + (z * self.eigenvalues.clamp_min(0).sqrt()) @ self.eigenvectors.T

    def log_density(self, x: Tensor, sigma: Tensor | float) -> Tensor:
        """(B,) log N(x; m, S + σ²I), evaluated in S's eigenbasis."""
        sigma = per_sample_sigma(sigma, x).to(torch.float64)
        variances = self.eigenvalues + sigma[:, None] ** 2  # (B, D)
        residual = (x.to(torch.float64) - self.mean) @ self.eigenvectors
        quadratic = (residual**2 / variances).sum(dim=1)
        return -0.5 * (quadratic + variances.log().sum(dim=1) + self.dim * LOG_2PI)

    def denoiser(self) -> Denoiser:
        """m + S(S + σ²I)⁻¹(x - m): ``ddpmkit.core.analytic.GaussianDenoiser``."""
        return GaussianDenoiser(self.mean, self.cov)


class GaussianMixture:
    """x_0 ~ Σ_k π_k N(m_k, s_k² I): ``weights`` (K,), ``means`` (K, D), ``stds`` (K,).

    Noising by σ adds σ² to every component's variance: p_σ = Σ_k π_k N(m_k, (s_k² + σ²)I).
    Weights are normalised here; component stds must be positive.
    """

    def __init__(self, weights: Tensor, means: Tensor, stds: Tensor) -> None:
        weights, means, stds = (t.to(torch.float64) for t in (weights, means, stds))
        if means.ndim != 2 or weights.shape != (means.shape[0],) or stds.shape != weights.shape:
            raise ValueError(
                f"expected weights (K,), means (K, D), stds (K,); got {tuple(weights.shape)}, "
                f"{tuple(means.shape)}, {tuple(stds.shape)}"
            )
        if (weights < 0).any() or weights.sum() <= 0 or (stds <= 0).any():
            raise ValueError("mixture weights must be >= 0 (not all zero) and stds > 0")
        self.weights = weights / weights.sum()
        self.means = means
        self.stds = stds
        self.log_weights = self.weights.log()

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    @property
    def num_components(self) -> int:
        return self.means.shape[0]

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """(n, D) draws: a component k ~ π, then m_k + s_k z."""
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        z = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        return self.means[k] + self.stds[k, None] * z

    def component_log_joint(self, x: Tensor, sigma: Tensor | float) -> Tensor:
        """(B, K) log π_k + log N(x; m_k, (s_k² + σ²)I)."""
        x = x.to(torch.float64)
        sigma = per_sample_sigma(sigma, x).to(torch.float64)
        variances = self.stds**2 + sigma[:, None] ** 2  # (B, K)
        # ‖x - m_k‖² by expansion: (B, K) memory instead of (B, K, D); exact enough in float64
        # since every variance is at least s_k² > 0.
        squared = (
            (x**2).sum(dim=1, keepdim=True) - 2.0 * x @ self.means.T + (self.means**2).sum(dim=1)
        ).clamp_min(0.0)
        log_normal = -0.5 * (squared / variances + self.dim * (variances.log() + LOG_2PI))
        return self.log_weights + log_normal

    def log_density(self, x: Tensor, sigma: Tensor | float) -> Tensor:
        """(B,) log p_σ(x) = logsumexp_k [log π_k + log N(x; m_k, (s_k² + σ²)I)]."""
        return torch.logsumexp(self.component_log_joint(x, sigma), dim=1)

    def denoiser(self) -> GaussianMixtureDenoiser:
        return GaussianMixtureDenoiser(self)


class GaussianMixtureDenoiser:
    """The exact E[x_0|x] for Gaussian-mixture data (Tweedie's formula in closed form).

    D*(x; σ) = Σ_k w_k(x, σ)·(m_k + s_k²/(s_k² + σ²)·(x - m_k)), with the posterior
    responsibilities w_k = softmax_k(log π_k + log N(x; m_k, (s_k² + σ²)I)) computed by
    log-sum-exp, so sharp modes and large σ neither underflow nor overflow. Equals
    x + σ²∇ log p_σ(x) (Efron 2011; Karras et al. 2022, App. B.3).
    """

    def __init__(self, mixture: GaussianMixture) -> None:
        self.mixture = mixture

    def __call__(
        self, x: Tensor, sigma: Tensor | float, class_labels: Tensor | None = None
    ) -> Tensor:
        x64 = x.to(torch.float64)
        sigma = per_sample_sigma(sigma, x64)
        responsibilities = torch.softmax(self.mixture.component_log_joint(x64, sigma), dim=1)
        s2, noise2 = self.mixture.stds**2, sigma[:, None] ** 2  # (K,), (B, 1)
        keep = s2 / (s2 + noise2)  # (B, K): the gain s²/(s² + σ²) on x - m_k
        shrink = noise2 / (s2 + noise2)  # (B, K): 1 - gain, computed without cancellation
        x0_hat = (responsibilities * shrink) @ self.mixture.means
        x0_hat = x0_hat + (responsibilities * keep).sum(dim=1, keepdim=True) * x64
        return x0_hat.to(x.dtype)


class TimestepEpsModel:
    """A denoiser seen as an ε-prediction network of training step t, for diffusers' schedulers.

    σ(t) is the schedule's σ table interpolated linearly in t (diffusers' Euler and Heun do the
    same for their fractional timesteps; integer t gives the table's rows), ᾱ = 1/(1 + σ²) and
    ε̂(x_t, t) = (x_t - √ᾱ x̂_0)/√(1-ᾱ) with x̂_0 = D(x_t/√ᾱ; σ) (Ho et al. 2020, eq. 4).
    ``calls`` counts the evaluations.
    """

    def __init__(self, denoiser: Denoiser, schedule: NoiseSchedule) -> None:
        self.denoiser = denoiser
        self.sigma_table = schedule.sigmas
        self.calls = 0

    def __call__(self, x_t: Tensor, t: Tensor | float) -> Tensor:
        self.calls += 1
        t = float(t)
        low = min(max(math.floor(t), 0), len(self.sigma_table) - 2)
        w = min(max(t - low, 0.0), 1.0)
        sigma = (1 - w) * float(self.sigma_table[low]) + w * float(self.sigma_table[low + 1])
        alpha_bar = 1.0 / (1.0 + sigma**2)
        x_t64 = x_t.to(torch.float64)
        x0_hat = self.denoiser(x_t64 / math.sqrt(alpha_bar), torch.tensor(sigma, dtype=x_t64.dtype))
        eps = (x_t64 - math.sqrt(alpha_bar) * x0_hat) / math.sqrt(1.0 - alpha_bar)
        return eps.to(x_t.dtype)


def _seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def gaussian(dim: int = 8, seed: int = 0) -> Gaussian:
    """An anisotropic Gaussian: stds log-spaced from 0.05 to 1 in a random rotation, mean ≠ 0."""
    generator = _seeded(seed)
    rotation, _ = torch.linalg.qr(torch.randn(dim, dim, generator=generator, dtype=torch.float64))
    stds = torch.logspace(math.log10(0.05), 0.0, dim, dtype=torch.float64)
    mean = 0.5 * torch.randn(dim, generator=generator, dtype=torch.float64)
    return Gaussian(mean, rotation @ torch.diag(stds**2) @ rotation.T)


def sharp_mixture(dim: int = 2) -> GaussianMixture:
    """25 sharp modes on a 5×5 grid over [-1, 1]² (spacing 0.5), in the first two coordinates.

    Component stds alternate 0.05/0.1 and weights cycle 1:2:3, so a sampler that blurs modes,
    leaks mass between them or equalises their weights shows up. Extra coordinates (dim > 2)
    have mean 0. Overall data std ≈ 0.7 per grid coordinate.
    """
    if dim < 2:
        raise ValueError(f"sharp_mixture needs dim >= 2, got {dim}")
    grid = torch.linspace(-1.0, 1.0, 5, dtype=torch.float64)
    i, j = torch.meshgrid(torch.arange(5), torch.arange(5), indexing="ij")
    i, j = i.flatten(), j.flatten()
    means = torch.zeros(25, dim, dtype=torch.float64)
    means[:, 0], means[:, 1] = grid[i], grid[j]
    stds = torch.where((i + j) % 2 == 0, 0.05, 0.1).to(torch.float64)
    weights = (1.0 + (i + 2 * j) % 3).to(torch.float64)
    return GaussianMixture(weights, means, stds)


def mixture(dim: int = 8, num_components: int = 16, seed: int = 0) -> GaussianMixture:
    """``num_components`` sharp modes with N(0, I) means (data scale ~1 per coordinate).

    Component stds are spread over [0.05, 0.15] and weights over [1, 3] (relative); the
    draws are fixed by ``seed``. For dim ≥ 8 the modes are far apart (‖m_j - m_k‖ ≈ √(2D));
    in 2-D some may overlap.
    """
    generator = _seeded(seed)
    means = torch.randn(num_components, dim, generator=generator, dtype=torch.float64)
    stds = 0.05 + 0.1 * torch.rand(num_components, generator=generator, dtype=torch.float64)
    weights = 1.0 + 2.0 * torch.rand(num_components, generator=generator, dtype=torch.float64)
    return GaussianMixture(weights, means, stds)


TESTBEDS: dict[str, Callable[[], ExactDistribution]] = {
    "sharp-2d": sharp_mixture,
    "gaussian-8": partial(gaussian, 8),
    "mixture-2": partial(mixture, 2),
    "mixture-8": partial(mixture, 8),
    "mixture-32": partial(mixture, 32),
}
"""The named testbed distributions, each built by a call with no arguments."""
