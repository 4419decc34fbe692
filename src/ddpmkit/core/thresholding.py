"""Keeping x̂_0 in the data range: static clipping and dynamic thresholding, as denoiser wrappers.

Each takes a denoiser and returns another, so every sampler gets them without a line of its own;
a learned variance of the wrapped denoiser passes through unchanged.
"""

from __future__ import annotations

from abc import abstractmethod

import torch
from torch import Tensor

from ddpmkit.core.denoisers import Denoiser, DenoiserWrapper, predict_with_variance


class X0Transform(DenoiserWrapper):
    """A denoiser whose x̂_0 is the wrapped denoiser's, passed through ``transform``."""

    @abstractmethod
    def transform(self, x0_hat: Tensor) -> Tensor:
        """The new x̂_0 from the wrapped denoiser's."""

    def predict(
        self, x: Tensor, sigma: Tensor | float, class_labels: Tensor | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """The transformed x̂_0 and the wrapped denoiser's variance fraction v (or None)."""
        x0_hat, v = predict_with_variance(self.denoiser, x, sigma, class_labels)
        return self.transform(x0_hat), v


class ClippedDenoiser(X0Transform):
    """x̂_0 clipped to [low, high] (Ho et al. 2020, §3.3: the data lie in [-1, 1]).

    Args:
        denoiser: the denoiser D(x; σ) whose x̂_0 is clipped.
        low: the lower bound of x̂_0 (data units).
        high: the upper bound of x̂_0 (data units).
    """

    def __init__(self, denoiser: Denoiser, low: float = -1.0, high: float = 1.0) -> None:
        self.denoiser, self.low, self.high = denoiser, low, high

    def transform(self, x0_hat: Tensor) -> Tensor:
        return x0_hat.clamp(self.low, self.high)


class DynamicThresholding(X0Transform):
    """x̂_0 ← clip(x̂_0, -s, s)/s with s = max(1, the p-th quantile of |x̂_0|) per sample.

    Saharia et al. (2022), Imagen §2.3: saturated pixels are pushed inwards instead of clipped.

    Args:
        denoiser: the denoiser D(x; σ) whose x̂_0 is thresholded.
        percentile: p in (0, 1], the quantile of |x̂_0| over each sample's elements.
        max_value: the bound in place of 1: s = max(max_value, quantile), and the result
            clip(x̂_0, -s, s)/s·max_value lies in [-max_value, max_value].
    """

    def __init__(
        self, denoiser: Denoiser, percentile: float = 0.995, max_value: float = 1.0
    ) -> None:
        if not 0.0 < percentile <= 1.0:
            raise ValueError(
                f"dynamic thresholding percentile must lie in (0, 1], got {percentile}"
            )
        self.denoiser, self.percentile, self.max_value = denoiser, percentile, max_value

    def transform(self, x0_hat: Tensor) -> Tensor:
        s = torch.quantile(x0_hat.abs().flatten(1).float(), self.percentile, dim=1)
        s = s.clamp(min=self.max_value).to(x0_hat.dtype).reshape(-1, *([1] * (x0_hat.ndim - 1)))
        return x0_hat.clamp(-s, s) / s * self.max_value
