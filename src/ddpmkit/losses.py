"""Training objectives: L_simple (Ho et al. 2020, Algorithm 1), optionally weighted per t.

A loss is a callable ``loss(network, x0, class_labels, generator) -> LossOutput`` giving one value per
sample, so the trainer can log it by t and a timestep sampler can learn from it. Timestep samplers
choose t and the importance weights that keep the estimate unbiased; the variational-bound and
hybrid losses plug in beside ``SimpleLoss`` with the same signature.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

import torch
from torch import Tensor, nn

from ddpmkit.forward import q_sample
from ddpmkit.parameterization import Parameterization, training_target
from ddpmkit.randomness import randn_like
from ddpmkit.schedules import NoiseSchedule

LossWeighting = Literal["uniform", "min_snr"]


@dataclass
class LossOutput:
    """The batch loss to minimise, and per-sample losses with their timesteps for logging."""

    loss: Tensor
    per_sample: Tensor
    t: Tensor


class TimestepSampler(Protocol):
    """Draws t for a batch with importance weights 1/(T·p(t)); learns from observed losses."""

    def sample(self, batch_size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]: ...

    def update(self, t: Tensor, losses: Tensor) -> None: ...


class UniformTimesteps:
    """t ~ Uniform({0, …, T-1}) (Ho et al. 2020, Algorithm 1, line 3), all weights 1."""

    def __init__(self, num_steps: int) -> None:
        self.num_steps = num_steps

    def sample(self, batch_size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        t = torch.randint(
            0, self.num_steps, (batch_size,), generator=generator, device=generator.device
        )
        return t, torch.ones(batch_size, device=generator.device)

    def update(self, t: Tensor, losses: Tensor) -> None:
        """Uniform sampling learns nothing from the losses."""


def min_snr_weight(
    schedule: NoiseSchedule, parameterization: Parameterization, gamma: float
) -> Tensor:
    """Per-t weight so that the loss equals min(SNR_t, γ)·‖x_0 - x̂_0‖² (Hang et al. 2023, eq. 7).

    The ε-, x_0- and v-errors are SNR, 1 and SNR + 1 times the x_0-error, hence the divisors.
    """
    snr = schedule.log_snr.exp()
    divisor = {"eps": snr, "x0": torch.ones_like(snr), "v": snr + 1}[parameterization]
    return snr.clamp(max=gamma) / divisor


def loss_weights(
    schedule: NoiseSchedule,
    parameterization: Parameterization,
    weighting: LossWeighting,
    gamma: float,
) -> Tensor | None:
    """The (T,) table of per-t loss weights, or None for L_simple's uniform weighting."""
    if weighting == "uniform":
        return None
    if weighting == "min_snr":
        return min_snr_weight(schedule, parameterization, gamma)
    raise ValueError(f"unknown loss weighting {weighting!r}; choose 'uniform' or 'min_snr'")


class SimpleLoss:
    """E_{t,x_0,ε} w_t ‖target - f_θ(√ᾱ_t x_0 + √(1-ᾱ_t) ε, t)‖² (Ho et al. 2020, eq. 14)."""

    def __init__(
        self,
        schedule: NoiseSchedule,
        parameterization: Parameterization,
        weights: Tensor | None = None,
        timesteps: TimestepSampler | None = None,
    ) -> None:
        self.schedule = schedule
        self.parameterization = parameterization
        self.weights = weights
        self.timesteps = timesteps or UniformTimesteps(schedule.num_steps)

    def __call__(
        self,
        network: nn.Module | Callable[..., Tensor],
        x0: Tensor,
        class_labels: Tensor | None,
        generator: torch.Generator,
    ) -> LossOutput:
        t, importance = self.timesteps.sample(x0.shape[0], generator)
        t, importance = t.to(x0.device), importance.to(x0.device)
        eps = randn_like(x0, generator)
        x_t = q_sample(self.schedule, x0, t, eps)
        alpha_bar = self.schedule.at(self.schedule.alpha_bar, t, x0)
        target = training_target(self.parameterization, x0, eps, alpha_bar)
        output = network(x_t, t.to(x0.dtype), class_labels)
        per_sample = (target - output.float()).pow(2).flatten(1).mean(1)
        if self.weights is not None:
            per_sample = per_sample * self.weights.to(x0.device)[t].to(per_sample.dtype)
        self.timesteps.update(t, per_sample.detach())
        return LossOutput((importance * per_sample).mean(), per_sample.detach(), t)
