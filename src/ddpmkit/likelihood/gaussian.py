"""Gaussian building blocks of the likelihood: KL divergence and DDPM's discretized decoder.

All functions are elementwise (no reduction) and return nats. Variances are given as logs
(``logvar`` = log σ², ``log_scale`` = log σ), as in improved-diffusion's ``losses.py``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

LOG_2PI = math.log(2.0 * math.pi)


def normal_kl(
    mean1: Tensor | float, logvar1: Tensor | float, mean2: Tensor | float, logvar2: Tensor | float
) -> Tensor:
    """KL(N(μ₁, e^{lv₁}) ‖ N(μ₂, e^{lv₂})) = ½(lv₂ - lv₁ + e^{lv₁-lv₂} + (μ₁-μ₂)²e^{-lv₂} - 1).

    At least one argument is a tensor; the first one sets the dtype and device of the others,
    which broadcast against it.

    Args:
        mean1: μ₁, the first Gaussian's mean.
        logvar1: lv₁ = log σ₁², the first Gaussian's log variance.
        mean2: μ₂, the second Gaussian's mean.
        logvar2: lv₂ = log σ₂², the second Gaussian's log variance.

    Returns:
        The elementwise KL in nats.
    """
    tensor = next(v for v in (mean1, logvar1, mean2, logvar2) if isinstance(v, Tensor))
    mean1, logvar1, mean2, logvar2 = (
        torch.as_tensor(v, dtype=tensor.dtype, device=tensor.device)
        for v in (mean1, logvar1, mean2, logvar2)
    )
    return 0.5 * (
        logvar2
        - logvar1
        + torch.exp(logvar1 - logvar2)
        + (mean1 - mean2) ** 2 * torch.exp(-logvar2)
        - 1.0
    )


def gaussian_log_density(x: Tensor, mean: Tensor, log_scale: Tensor) -> Tensor:
    """log N(x; μ, e^{2 log_scale}): the continuous decoder, for data that are not discrete."""
    z = (x - mean) * torch.exp(-log_scale)
    return -0.5 * (z**2 + LOG_2PI) - log_scale


def log_ndtr_difference(upper: Tensor, lower: Tensor) -> Tensor:
    """log(Φ(upper) - Φ(lower)) for upper ≥ lower, stable in both tails (Φ(b)-Φ(a) = Φ(-a)-Φ(-b))."""
    flip = lower > 0  # both in the right tail: use the mirrored, left-tail form
    upper, lower = torch.where(flip, -lower, upper), torch.where(flip, -upper, lower)
    log_upper: Tensor = torch.special.log_ndtr(upper)
    log_lower: Tensor = torch.special.log_ndtr(lower)
    # log Φ(u) + log(1 - Φ(l)/Φ(u)); -expm1 of a non-positive number is accurate near 0 too.
    return log_upper + torch.log(-torch.expm1((log_lower - log_upper).clamp(max=0.0)))


def discretized_gaussian_log_likelihood(
    x: Tensor, mean: Tensor, log_scale: Tensor, num_levels: int = 256
) -> Tensor:
    """log ∫_{bin(x)} N(y; μ, e^{2 log_scale}) dy for data in [-1, 1] (Ho et al. 2020, eq. 13).

    ``x`` holds the ``num_levels`` grid values -1 + 2k/(num_levels - 1); the bin of x is
    [x - δ, x + δ] with δ = 1/(num_levels - 1) (1/255 for 8-bit data), except that the first
    bin extends to -∞ and the last to +∞, so the probabilities of the levels sum to one.
    Computed in float64 with the exact ``log_ndtr`` and returned in the inputs' dtype.

    Args:
        x: the discrete data x_0 in [-1, 1].
        mean: μ, the decoder's mean, broadcastable against ``x``.
        log_scale: log σ, the log of the decoder's standard deviation (not of its variance).
        num_levels: the number of discrete values (256 for 8-bit data).

    Returns:
        The elementwise log-probability of x's bin, in nats.
    """
    dtype = torch.promote_types(torch.promote_types(x.dtype, mean.dtype), log_scale.dtype)
    x64, mean64, log_scale64 = (v.to(torch.float64) for v in (x, mean, log_scale))
    half_width = 1.0 / (num_levels - 1)
    inv_scale = torch.exp(-log_scale64)
    upper = (x64 - mean64 + half_width) * inv_scale  # standardised bin edges
    lower = (x64 - mean64 - half_width) * inv_scale
    first, last = x64 < -1.0 + half_width, x64 > 1.0 - half_width
    upper = torch.where(last, torch.inf, upper)
    lower = torch.where(first, -torch.inf, lower)
    log_probs = log_ndtr_difference(upper, lower)
    return log_probs.to(dtype)
