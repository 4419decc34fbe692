"""The denoiser interface every sampler uses, and the wrapper that turns a network into one.

A denoiser maps a noisy batch in variance-exploding coordinates, x = x_t/√ᾱ_t = x_0 + σ ε with
σ = √((1-ᾱ_t)/ᾱ_t), to its estimate x̂_0 (Karras et al. 2022, §2; k-diffusion's convention).
A denoiser of a network with learned variances also has ``predict``, which returns x̂_0 and the
interpolation fraction v of Σ_θ (Nichol & Dhariwal 2021, eq. 15); ``predict_with_variance``
reads both from any denoiser (v is None where there is none).
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor, nn

from ddpmkit.core.parameterization import (
    PARAMETERIZATIONS,
    X0_FROM_OUTPUT,
    Parameterization,
    alpha_bar_from_sigma,
    split_output,
)
from ddpmkit.core.schedules import NoiseSchedule


class Denoiser(Protocol):
    """D(x; σ) ≈ E[x_0 | x_0 + σε = x]."""

    def __call__(self, x: Tensor, sigma: Tensor, class_labels: Tensor | None = None) -> Tensor: ...


def predict_with_variance(
    denoiser: Denoiser, x: Tensor, sigma: Tensor | float, class_labels: Tensor | None = None
) -> tuple[Tensor, Tensor | None]:
    """x̂_0 and the learned variance fraction v of a denoiser, v = None if it learned none."""
    predict = getattr(denoiser, "predict", None)
    if predict is None:
        return denoiser(x, sigma, class_labels), None
    return predict(x, sigma, class_labels)


def per_sample_sigma(sigma: Tensor | float, x: Tensor) -> Tensor:
    """σ as a (B,) tensor of x's dtype and device, from a scalar or a (B,) tensor."""
    sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
    return sigma.expand(x.shape[0]) if sigma.ndim == 0 else sigma


def broadcast_to(values: Tensor, x: Tensor) -> Tensor:
    """(B,) values reshaped to (B, 1, …, 1) so that they broadcast over x."""
    return values.reshape(-1, *([1] * (x.ndim - 1)))


def network_inputs(
    network: nn.Module, schedule: NoiseSchedule, x: Tensor, sigma: Tensor | float
) -> tuple[Tensor, Tensor, Tensor]:
    """VE (x, σ) as a discrete-time network's inputs: x_t = x·√ᾱ, t(σ) in the network's dtype, ᾱ.

    ᾱ = 1/(1 + σ²) broadcast over x; t is the schedule's fractional step (``sigma_to_t``). x_t keeps
    x's dtype (float64 maths may feed a float32 network: cast it with ``t.dtype``).
    """
    sigma = per_sample_sigma(sigma, x)
    alpha_bar = broadcast_to(alpha_bar_from_sigma(sigma.double()).to(x.dtype), x)
    weight = next(network.parameters(), None)
    network_dtype = x.dtype if weight is None else weight.dtype
    return x * alpha_bar.sqrt(), schedule.sigma_to_t(sigma).to(network_dtype), alpha_bar


class NetworkDenoiser:
    """A network trained on DDPM's discrete t, read as a denoiser (its parameterization fixed once).

    σ between the schedule's table rows is fed to the network as a fractional t, interpolated
    linearly in log σ (the sinusoidal embedding is defined for any real t). With
    ``learned_variance`` the network's output has twice the data's channels, the second half
    giving Σ_θ (``parameterization.split_output``).
    """

    def __init__(
        self,
        network: nn.Module,
        schedule: NoiseSchedule,
        parameterization: Parameterization,
        learned_variance: bool = False,
    ) -> None:
        if parameterization not in PARAMETERIZATIONS:
            raise ValueError(
                f"unknown parameterization {parameterization!r}; choose one of {PARAMETERIZATIONS}"
            )
        self.network = network
        self.schedule = schedule
        self.parameterization = parameterization
        self.learned_variance = learned_variance
        self._x0_from_output = X0_FROM_OUTPUT[parameterization]

    def __call__(self, x: Tensor, sigma: Tensor, class_labels: Tensor | None = None) -> Tensor:
        return self.predict(x, sigma, class_labels)[0]

    def predict(
        self, x: Tensor, sigma: Tensor | float, class_labels: Tensor | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """x̂_0 = D(x; σ) and the variance fraction v (None without learned variances)."""
        x_t, t, alpha_bar = network_inputs(self.network, self.schedule, x, sigma)
        output = self.network(x_t.to(t.dtype), t, class_labels).to(x.dtype)
        mean_output, v = split_output(output, self.learned_variance)
        return self._x0_from_output(x_t, mean_output, alpha_bar), v
