"""The singular value decomposition of a linear measurement operator, A = U diag(s) Vᵀ, on
flattened samples: what DDRM works in and what ΠGDM's pseudo-inverse needs.

Any linear operator of ``inverse.operators`` (a mask, block-mean down-sampling, a blur,
colourization, a dense matrix) is read as its matrix by applying it to the standard basis, then
decomposed once with ``torch.linalg.svd``: exact for every operator, at a cost of D operator
applications and an SVD of a K×D matrix (D = C·H·W; quick up to a few thousand pixels).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ddpmkit.inverse.operators import MeasurementOperator

RANK_TOLERANCE = 1e-10
"""Singular values below this fraction of the largest are treated as 0 (directions not measured)."""


@dataclass(frozen=True)
class SpectralOperator:
    """A = U diag(s) Vᵀ for samples of ``shape``: U (K, r), s (r,), V (D, D) whose first r
    columns are the right singular vectors of s and the rest span A's null space."""

    u: Tensor
    s: Tensor
    v: Tensor
    shape: tuple[int, ...]

    @classmethod
    def of(cls, operator: MeasurementOperator, shape: tuple[int, ...]) -> SpectralOperator:
        """The decomposition of ``operator`` on samples of ``shape`` (float64)."""
        dims = math.prod(shape)
        basis = torch.eye(dims, dtype=torch.float64).reshape(dims, *shape)
        matrix = operator(basis).reshape(dims, -1).T  # column j = A e_j
        u, s, vh = torch.linalg.svd(matrix, full_matrices=True)
        rank = int((s > s.max() * RANK_TOLERANCE).sum()) if len(s) else 0
        return cls(u[:, :rank], s[:rank], vh.T, tuple(shape))

    @property
    def rank(self) -> int:
        return len(self.s)

    def to_spectral(self, x: Tensor) -> Tensor:
        """x̄ = Vᵀ x per sample: (B, *shape) -> (B, D)."""
        return x.flatten(1) @ self.v.to(x)

    def from_spectral(self, x_bar: Tensor) -> Tensor:
        """x = V x̄: (B, D) -> (B, *shape)."""
        return (x_bar @ self.v.to(x_bar).T).reshape(-1, *self.shape)

    def measured(self, y: Tensor) -> Tensor:
        """ȳ = diag(s)⁻¹ Uᵀ y: the measurement in the spectral coordinates of x, (B, r)."""
        return (y.flatten(1) @ self.u.to(y)) / self.s.to(y)

    def regularised_adjoint(self, residual: Tensor, r2: float, noise_var: float) -> Tensor:
        """Aᵀ (r² A Aᵀ + σ_y² I)⁻¹ residual = V diag(s/(r² s² + σ_y²)) Uᵀ residual, (B, *shape)
        (the pseudo-inverse A⁺ divided by r² when σ_y = 0)."""
        s = self.s.to(residual)
        weights = s / (r2 * s**2 + noise_var)
        coefficients = (residual.flatten(1) @ self.u.to(residual)) * weights
        return (coefficients @ self.v[:, : self.rank].to(residual).T).reshape(-1, *self.shape)
