"""Exact denoisers for data whose noised marginals are known in closed form (testbeds)."""

from __future__ import annotations

import torch
from torch import Tensor

from ddpmkit.core.denoisers import per_sample_sigma


class GaussianDenoiser:
    """E[x_0|x] for x_0 ~ N(m, S), x = x_0 + σε: m + S(S + σ²I)⁻¹(x - m) (Gaussian conditioning).

    Data are (B, D); ``mean`` is (D,), ``cov`` (D, D) symmetric positive semi-definite. With
    S = U diag(λ) Uᵀ the gain S(S + σ²I)⁻¹ is U diag(λ/(λ + σ²)) Uᵀ.
    """

    def __init__(self, mean: Tensor, cov: Tensor) -> None:
        self.mean = mean.to(torch.float64)
        self.eigenvalues: Tensor
        self.eigenvectors: Tensor
        self.eigenvalues, self.eigenvectors = torch.linalg.eigh(cov.to(torch.float64))

    def __call__(
        self, x: Tensor, sigma: Tensor | float, class_labels: Tensor | None = None
    ) -> Tensor:
        sigma = per_sample_sigma(sigma, x).to(torch.float64)
        shrink = self.eigenvalues / (self.eigenvalues + sigma[:, None] ** 2)  # (B, D)
        residual = (x.to(torch.float64) - self.mean) @ self.eigenvectors  # in the eigenbasis
        return (self.mean + (shrink * residual) @ self.eigenvectors.T).to(x.dtype)
