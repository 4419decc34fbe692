"""Measurement operators A for inverse problems y = A(x) + n: differentiable maps of a batch.

Images are (B, C, H, W), vectors (B, D). Every operator is built from differentiable torch ops, so
diffusion posterior sampling can take ∇_x ‖y - A(x̂_0(x))‖ through it (Chung et al. 2023, §3).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor


class MeasurementOperator(Protocol):
    """y = A(x): a differentiable map of a batch x to its noise-free measurement."""

    def __call__(self, x: Tensor) -> Tensor: ...


class Mask:
    """A(x) = m ⊙ x: keeps the pixels where the mask is 1 (inpainting), zero elsewhere.

    Args:
        mask: m, 1 at the known pixels and 0 elsewhere, broadcastable to x.
    """

    def __init__(self, mask: Tensor) -> None:
        self.mask = mask

    def __call__(self, x: Tensor) -> Tensor:
        return self.mask.to(x) * x


class Downsample:
    """A(x) = the mean of every factor × factor block of an image (super-resolution).

    Args:
        factor: the block's side in pixels, ≥ 1: (B, C, H, W) -> (B, C, ⌊H/factor⌋, ⌊W/factor⌋).
    """

    def __init__(self, factor: int) -> None:
        if factor < 1:
            raise ValueError(f"the down-sampling factor must be >= 1, got {factor}")
        self.factor = factor

    def __call__(self, x: Tensor) -> Tensor:
        return F.avg_pool2d(x, self.factor)


class GaussianBlur:
    """A(x) = k * x per channel, k a normalised Gaussian of std ``sigma`` (deblurring).

    ``padding="reflect"`` mirrors the border (a constant image stays constant); ``"zeros"`` pads
    with 0, which darkens the border but makes A a symmetric matrix. The output has x's size.

    Args:
        kernel_size: the kernel's width and height in pixels, odd, ≥ 1.
        sigma: the Gaussian's standard deviation in pixels.
        padding: "reflect" or "zeros", as above.
    """

    def __init__(
        self, kernel_size: int, sigma: float, padding: Literal["reflect", "zeros"] = "reflect"
    ) -> None:
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"the blur kernel size must be odd and >= 1, got {kernel_size}")
        if padding not in ("reflect", "zeros"):
            raise ValueError(f"padding must be 'reflect' or 'zeros', got {padding!r}")
        offsets = torch.arange(kernel_size, dtype=torch.float64) - kernel_size // 2
        profile = torch.exp(-0.5 * (offsets / sigma) ** 2)
        profile = profile / profile.sum()
        self.kernel = profile[:, None] * profile[None, :]  # (k, k), sums to 1
        self.padding = padding

    def __call__(self, x: Tensor) -> Tensor:
        channels, half = x.shape[1], self.kernel.shape[0] // 2
        weight = self.kernel.to(x).expand(channels, 1, *self.kernel.shape)
        mode = "reflect" if self.padding == "reflect" else "constant"
        padded = F.pad(x, (half, half, half, half), mode=mode)
        return F.conv2d(padded, weight, groups=channels)


class Colorize:
    """A(x) = the mean of the channels: (B, C, H, W) -> (B, 1, H, W) (colourization's measurement)."""

    def __call__(self, x: Tensor) -> Tensor:
        return x.mean(dim=1, keepdim=True)


class Linear:
    """A(x) = M x for vectors: (B, D) ↦ (B, K) with ``matrix`` M of shape (K, D)."""

    def __init__(self, matrix: Tensor) -> None:
        self.matrix = matrix

    def __call__(self, x: Tensor) -> Tensor:
        return x @ self.matrix.to(x).T


class FunctionOperator:
    """A(x) = fn(x) for any differentiable callable fn (non-linear measurements)."""

    def __init__(self, fn: Callable[[Tensor], Tensor]) -> None:
        self.fn = fn

    def __call__(self, x: Tensor) -> Tensor:
        return self.fn(x)
