"""Full-reference image quality, per image: PSNR and SSIM of images in [-1, 1] (data range 2).

Both take batches (B, C, H, W), or one image (C, H, W), and return a (B,) float64 tensor.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

DATA_RANGE = 2.0
"""L, the span of the pixel values: images in [-1, 1]."""


def psnr(x: Tensor, y: Tensor, data_range: float = DATA_RANGE) -> Tensor:
    """10 log10(L² / MSE(x, y)) in dB per image; +inf where x = y (the standard definition)."""
    x, y = _as_batches(x, y)
    mse = (x - y).pow(2).flatten(1).mean(dim=1)
    return 10.0 * torch.log10(data_range**2 / mse)


def ssim(x: Tensor, y: Tensor, data_range: float = DATA_RANGE, sigma: float = 1.5) -> Tensor:
    """Mean structural similarity per image (Wang et al. 2004, eq. 13 and §III-C).

    Local means, variances and the covariance are weighted by the paper's normalised 11×11
    Gaussian window of std ``sigma`` (1.5), shrunk to min(11, H, W) for tiny images, taken at
    every position where the window fits (no padding), per channel — scikit-image's
    ``structural_similarity(gaussian_weights=True, use_sample_covariance=False)``;
    SSIM = (2μ_xμ_y + C1)(2σ_xy + C2) / ((μ_x² + μ_y² + C1)(σ_x² + σ_y² + C2)) with
    C1 = (0.01 L)², C2 = (0.03 L)², averaged over positions and channels.
    """
    x, y = _as_batches(x, y)
    channels = x.shape[1]
    size = min(11, x.shape[2], x.shape[3])
    offsets = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    profile = torch.exp(-0.5 * (offsets / sigma) ** 2)
    profile = profile / profile.sum()
    window = (profile[:, None] * profile[None, :]).to(x.device).expand(channels, 1, size, size)

    def local_mean(z: Tensor) -> Tensor:
        return F.conv2d(z, window, groups=channels)

    mu_x, mu_y = local_mean(x), local_mean(y)
    var_x = local_mean(x * x) - mu_x**2
    var_y = local_mean(y * y) - mu_y**2
    cov = local_mean(x * y) - mu_x * mu_y
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    index = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / (
        (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    )
    return index.flatten(1).mean(dim=1)


def _as_batches(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """x and y as float64 batches (B, C, H, W) of the same shape."""
    if x.shape != y.shape:
        raise ValueError(f"images of different shapes {tuple(x.shape)} and {tuple(y.shape)}")
    if x.ndim == 3:
        x, y = x[None], y[None]
    if x.ndim != 4:
        raise ValueError(f"expected images (B, C, H, W) or (C, H, W), got {tuple(x.shape)}")
    return x.to(torch.float64), y.to(device=x.device, dtype=torch.float64)
