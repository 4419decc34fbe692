"""The denoiser interface every sampler uses, and the wrapper that turns a network into one.

A denoiser maps a noisy batch in variance-exploding coordinates, x = x_t/√ᾱ_t = x_0 + σ ε with
σ = √((1-ᾱ_t)/ᾱ_t), to its estimate x̂_0 (Karras et al. 2022, §2; k-diffusion's convention).
A denoiser of a network with learned variances also has ``predict``, which returns x̂_0 and the
interpolation fraction v of Σ_θ (Nichol & Dhariwal 2021, eq. 15); ``predict_with_variance``
reads both from any denoiser (v is None where there is none).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Protocol, cast, runtime_checkable

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


@runtime_checkable
class Denoiser(Protocol):
    """D(x; σ) ≈ E[x_0 | x_0 + σε = x]."""

    def __call__(
        self, x: Tensor, sigma: Tensor | float, class_labels: Tensor | None = None
    ) -> Tensor: ...


def predict_with_variance(
    denoiser: Denoiser, x: Tensor, sigma: Tensor | float, class_labels: Tensor | None = None
) -> tuple[Tensor, Tensor | None]:
    """x̂_0 and the learned variance fraction v of a denoiser, v = None if it learned none."""
    predict = getattr(denoiser, "predict", None)
    if predict is None:
        return denoiser(x, sigma, class_labels), None
    return cast("tuple[Tensor, Tensor | None]", predict(x, sigma, class_labels))


def network_evaluations(denoiser: Denoiser) -> int:
    """Network evaluations per sample in one call of ``denoiser``: 1 for a plain denoiser, what a
    `DenoiserWrapper` counts (guidance evaluates two branches: 2)."""
    return denoiser.network_evaluations if isinstance(denoiser, DenoiserWrapper) else 1


class PredictingDenoiser(ABC):
    """A denoiser defined by ``predict`` (x̂_0 and the learned variance fraction v): calling it
    returns x̂_0."""

    @abstractmethod
    def predict(
        self, x: Tensor, sigma: Tensor | float, class_labels: Tensor | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """x̂_0 = D(x; σ) and the variance fraction v (None where there is none)."""

    def __call__(
        self, x: Tensor, sigma: Tensor | float, class_labels: Tensor | None = None
    ) -> Tensor:
        return self.predict(x, sigma, class_labels)[0]


class DenoiserWrapper(PredictingDenoiser):
    """A denoiser made from another, ``denoiser``: guidance and clipping are such wrappers."""

    denoiser: Denoiser

    @property
    def network_evaluations(self) -> int:
        """Network evaluations per sample in one call: the wrapped denoiser's."""
        return network_evaluations(self.denoiser)


def per_sample_sigma(sigma: Tensor | float, x: Tensor) -> Tensor:
    """σ as a (B,) tensor of x's dtype and device, from a scalar or a (B,) tensor."""
    sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
    return sigma.expand(x.shape[0]) if sigma.ndim == 0 else sigma


def append_dims(values: Tensor, x: Tensor) -> Tensor:
    """(B,) values with x's remaining dimensions appended as 1s: (B, 1, …, 1), to broadcast over x."""
    return values.reshape(-1, *([1] * (x.ndim - 1)))


def network_inputs(
    network: nn.Module, schedule: NoiseSchedule, x: Tensor, sigma: Tensor | float
) -> tuple[Tensor, Tensor, Tensor]:
    """VE (x, σ) as a discrete-time network's inputs: x_t = x·√ᾱ, t(σ) in the network's dtype, ᾱ.

    In EDM's terms (Karras et al. 2022, Table 1, VP) c_in = √ᾱ = 1/√(1 + σ²) and c_noise = t(σ),
    the schedule's fractional step (``sigma_to_t``), computed from σ in float64 so that a table
    level gives its integer step exactly. ᾱ = 1/(1 + σ²) is broadcast over x; x_t keeps x's dtype
    (float64 maths may feed a float32 network: cast it with ``t.dtype``).
    """
    sigma = torch.as_tensor(sigma, dtype=torch.float64, device=x.device)
    sigma = sigma.expand(x.shape[0]) if sigma.ndim == 0 else sigma
    alpha_bar = append_dims(alpha_bar_from_sigma(sigma).to(x.dtype), x)
    weight = next(network.parameters(), None)
    network_dtype = x.dtype if weight is None else weight.dtype
    return x * alpha_bar.sqrt(), schedule.sigma_to_t(sigma).to(network_dtype), alpha_bar


def previous_alpha_bar(schedule: NoiseSchedule, sigma: Tensor, like: Tensor) -> Tensor:
    """ᾱ_{t-1} for the (fractional) t of σ: the level a reverse step from t goes to, with
    ᾱ = 1 below t = 1 (x_0 itself); broadcast against ``like``."""
    t = schedule.sigma_to_t(sigma.to(torch.float64))
    sigma_prev = torch.where(t >= 1, schedule.t_to_sigma(t - 1), torch.zeros_like(t))
    return append_dims(alpha_bar_from_sigma(sigma_prev), like).to(like.dtype)


@dataclass
class NetworkOutput:
    """One evaluation of the network at (x; σ): its VP input x_t with ᾱ_t and ᾱ_{t-1}, the raw
    prediction of the parameterization's target (ε, x_0, v, score or μ̃) and the learned
    variance fraction v (or None)."""

    x_t: Tensor
    alpha_bar: Tensor
    alpha_bar_prev: Tensor | None  # only the μ̃ parameterization reads it
    prediction: Tensor
    v: Tensor | None


class NetworkDenoiser(PredictingDenoiser):
    """A network trained on DDPM's discrete t, read as a denoiser (its parameterization fixed once).

    The one path by which training, sampling and guidance call a network: ``evaluate`` feeds it
    x_t = c_in·x and t(σ) (``network_inputs``) and splits its output; ``x0_from`` turns the
    prediction into x̂_0 = c_skip·x + c_out·prediction for ε, x_0 or v. σ between the schedule's
    table rows is fed as a fractional t, interpolated linearly in log σ (the sinusoidal embedding
    is defined for any real t). With ``learned_variance`` the network's output has twice the
    data's channels, the second half giving Σ_θ (``parameterization.split_output``).
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

    def evaluate(
        self, x: Tensor, sigma: Tensor | float, class_labels: Tensor | None = None
    ) -> NetworkOutput:
        """The network's prediction at VE (x; σ), in x's dtype, with the inputs it was given."""
        x_t, t, alpha_bar = network_inputs(self.network, self.schedule, x, sigma)
        output = self.network(x_t.to(t.dtype), t, class_labels).to(x.dtype)
        prediction, v = split_output(output, self.learned_variance)
        previous = None
        if self.parameterization == "mean":  # off the hot path of the other four
            previous = previous_alpha_bar(self.schedule, per_sample_sigma(sigma, x), x)
        return NetworkOutput(x_t, alpha_bar, previous, prediction, v)

    def x0_from(self, output: NetworkOutput, prediction: Tensor | None = None) -> Tensor:
        """x̂_0 of an evaluation (or of another ``prediction`` at its inputs, e.g. detached)."""
        prediction = output.prediction if prediction is None else prediction
        return self._x0_from_output(output.x_t, prediction, output.alpha_bar, output.alpha_bar_prev)

    def predict(
        self, x: Tensor, sigma: Tensor | float, class_labels: Tensor | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """x̂_0 = D(x; σ) and the variance fraction v (None without learned variances)."""
        output = self.evaluate(x, sigma, class_labels)
        return self.x0_from(output), output.v
