"""Sample-based distances between two point clouds (B, D): sliced Wasserstein and kernel MMD.

Both compare a sampler's output with exact samples of a testbed distribution
(``ddpmkit.evaluation.testbed``); both are computed in float64 and are deterministic given a generator.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def sliced_wasserstein(
    a: Tensor,
    b: Tensor,
    num_projections: int = 256,
    generator: torch.Generator | None = None,
) -> float:
    """The sliced 2-Wasserstein distance SW₂(a, b) between the empirical measures of a and b.

    SW₂² = E_u[W₂²(uᵀa, uᵀb)] over directions u uniform on the unit sphere (Rabin et al. 2011;
    Bonneel et al. 2015), estimated with ``num_projections`` random directions drawn from
    ``generator``. Each 1-D W₂² is exact: the integral over quantile levels of the squared gap
    between the two empirical quantile functions (sorting; the sets may differ in size).
    Returns √(mean over directions of W₂²).
    """
    a, b = _as_float64_2d(a), _as_float64_2d(b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"dimensions differ: {a.shape[1]} and {b.shape[1]}")
    directions = torch.randn(num_projections, a.shape[1], generator=generator, dtype=torch.float64)
    directions = directions / directions.norm(dim=1, keepdim=True)
    projected_a = (a @ directions.T).sort(dim=0).values  # (N, P)
    projected_b = (b @ directions.T).sort(dim=0).values  # (M, P)
    return float(_sorted_w2_squared(projected_a, projected_b).mean().sqrt())


def _sorted_w2_squared(sorted_a: Tensor, sorted_b: Tensor) -> Tensor:
    """(P,) ∫₀¹ (F_a⁻¹(u) - F_b⁻¹(u))² du per column, for sorted columns of any two lengths.

    Both quantile functions are piecewise constant, with steps at i/N and j/M; on each piece of
    the merged partition the integrand is constant, evaluated at the piece's midpoint.
    """
    n, m = sorted_a.shape[0], sorted_b.shape[0]
    steps_a = torch.arange(1, n + 1, dtype=torch.float64) / n
    steps_b = torch.arange(1, m + 1, dtype=torch.float64) / m
    levels = torch.cat([steps_a, steps_b]).sort().values
    widths = torch.diff(levels, prepend=levels.new_zeros(1))
    midpoints = levels - widths / 2
    index_a = (midpoints * n).floor().long().clamp(0, n - 1)
    index_b = (midpoints * m).floor().long().clamp(0, m - 1)
    gaps = sorted_a[index_a] - sorted_b[index_b]  # (N + M, P)
    return (widths[:, None] * gaps**2).sum(dim=0)


def mmd_rbf(
    a: Tensor,
    b: Tensor,
    bandwidths: Sequence[float] | None = None,
    chunk_size: int = 2048,
) -> float:
    """Unbiased squared MMD with a sum of Gaussian kernels k(x, y) = Σ_h exp(-‖x - y‖²/(2h²)).

    MMD²_u = 1/(N(N-1)) Σ_{i≠j} k(a_i, a_j) + 1/(M(M-1)) Σ_{i≠j} k(b_i, b_j)
    - 2/(NM) Σ_{i,j} k(a_i, b_j) (Gretton et al. 2012, JMLR, Lemma 6). Summing several
    bandwidths gives a characteristic kernel sensitive at several scales (Li et al. 2017).
    It is unbiased, so it may come out slightly negative when a and b share a distribution.
    Without ``bandwidths``, uses 1/4, 1/2, 1, 2 and 4 times the median pairwise distance of
    the first (up to) 1000 rows of a and b pooled. Pairs are summed in chunks of rows, so memory
    stays O(chunk_size · max(N, M)).
    """
    a, b = _as_float64_2d(a), _as_float64_2d(b)
    n, m = a.shape[0], b.shape[0]
    if n < 2 or m < 2:
        raise ValueError("mmd_rbf needs at least two points in each set")
    scales = _median_bandwidths(a, b) if bandwidths is None else [float(h) for h in bandwidths]
    # k(x, x) = len(scales) for every x: take the diagonal out of the within-set sums.
    within_a = _kernel_sum(a, a, scales, chunk_size) - n * len(scales)
    within_b = _kernel_sum(b, b, scales, chunk_size) - m * len(scales)
    between = _kernel_sum(a, b, scales, chunk_size)
    return within_a / (n * (n - 1)) + within_b / (m * (m - 1)) - 2.0 * between / (n * m)


def _kernel_sum(x: Tensor, y: Tensor, bandwidths: Sequence[float], chunk_size: int) -> float:
    """Σ_{i,j} Σ_h exp(-‖x_i - y_j‖²/(2h²)), row chunk by row chunk."""
    y_norms = (y**2).sum(dim=1)
    total = 0.0
    for start in range(0, x.shape[0], chunk_size):
        rows = x[start : start + chunk_size]
        squared = ((rows**2).sum(dim=1, keepdim=True) - 2.0 * rows @ y.T + y_norms).clamp_min(0.0)
        for h in bandwidths:
            total += float(torch.exp(squared / (-2.0 * h * h)).sum())
    return total


def _median_bandwidths(a: Tensor, b: Tensor) -> list[float]:
    """The median pairwise distance of the pooled first rows, times 1/4, 1/2, 1, 2, 4."""
    pooled = torch.cat([a[:1000], b[:1000]])
    distances = torch.pdist(pooled)
    median = float(distances.median()) if distances.numel() else 0.0
    median = median if median > 0 else 1.0
    return [median * f for f in (0.25, 0.5, 1.0, 2.0, 4.0)]


def _as_float64_2d(x: Tensor) -> Tensor:
    x = x.detach().to(torch.float64)
    if x.ndim != 2:
        raise ValueError(f"expected a (B, D) point cloud, got shape {tuple(x.shape)}")
    return x
