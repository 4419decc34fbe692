"""Training objectives: L_simple (Ho et al. 2020, Algorithm 1), optionally weighted per t, and the
hybrid L_simple + λ L_vlb or the pure L_vlb with learned variances (Nichol & Dhariwal 2021).

A loss is a callable ``loss(denoiser, x0, class_labels, generator) -> LossOutput`` giving one
value per sample, so the trainer can log it by t and a timestep sampler can learn from it. Timestep samplers
choose t and the importance weights 1/(T·p_t) that keep the estimate unbiased.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Protocol

import torch
from torch import Tensor

from ddpmkit.core.denoisers import NetworkDenoiser, NetworkOutput, append_dims
from ddpmkit.core.forward import posterior_mean
from ddpmkit.core.parameterization import Parameterization, training_target
from ddpmkit.core.randomness import (
    BatchShard,
    multinomial_rows,
    randint_rows,
    randn_like,
)
from ddpmkit.core.schedules import NoiseSchedule, ReverseVariance
from ddpmkit.likelihood.gaussian import discretized_gaussian_log_likelihood
from ddpmkit.likelihood.vlb import (
    DecoderLogLikelihood,
    schedule_log_variance,
    vlb_term_of_prediction,
)

LossWeighting = Literal["uniform", "min_snr", "ncsn"]
LossKind = Literal["simple", "hybrid", "vlb"]
TimestepSampling = Literal["uniform", "importance", "lognormal"]


@dataclass
class LossOutput:
    """The batch loss to minimise, and per-sample losses with their timesteps for logging.

    Attributes:
        loss: the scalar to minimise: the batch mean of the per-sample losses times their
            importance weights 1/(T·p_t).
        per_sample: (B,) each sample's loss, weighted per t but without the importance weight,
            detached.
        t: (B,) the 0-based steps drawn for the samples.
    """

    loss: Tensor
    per_sample: Tensor
    t: Tensor


class TimestepSampler(Protocol):
    """Draws t for a batch with importance weights 1/(T·p(t)); learns from observed losses."""

    def sample(
        self, batch_size: int, generator: torch.Generator | BatchShard
    ) -> tuple[Tensor, Tensor]: ...

    def update(self, t: Tensor, losses: Tensor) -> None: ...

    def state_dict(self) -> dict[str, Tensor]: ...

    def load_state_dict(self, state: dict[str, Tensor]) -> None: ...


class UniformTimesteps:
    """t ~ Uniform({0, …, T-1}) (Ho et al. 2020, Algorithm 1, line 3), all weights 1.

    Args:
        num_steps: T, the schedule's number of steps.
    """

    def __init__(self, num_steps: int) -> None:
        self.num_steps = num_steps

    def sample(
        self, batch_size: int, generator: torch.Generator | BatchShard
    ) -> tuple[Tensor, Tensor]:
        t = randint_rows(self.num_steps, batch_size, generator)
        return t, torch.ones(batch_size, device=generator.device)

    def update(self, t: Tensor, losses: Tensor) -> None:
        """Uniform sampling learns nothing from the losses."""

    def state_dict(self) -> dict[str, Tensor]:
        """Uniform sampling has no state to checkpoint."""
        return {}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        """Nothing to restore."""


class SecondMomentTimesteps:
    """p_t ∝ √E[L_t²] over the last ``history`` losses at each t (Nichol & Dhariwal 2021, eq. 17).

    Uniform until every t has a full history; then mixed with ``uniform_share`` of the uniform
    distribution so that no t starves, as improved-diffusion does.
    """

    def __init__(self, num_steps: int, history: int = 10, uniform_share: float = 0.001) -> None:
        self.num_steps, self.uniform_share = num_steps, uniform_share
        self.history = torch.zeros(num_steps, history, dtype=torch.float64)
        self.counts = torch.zeros(num_steps, dtype=torch.long)

    def probabilities(self) -> Tensor:
        """(T,) p_t; uniform while some t has fewer than ``history`` recorded losses."""
        uniform = torch.full((self.num_steps,), 1.0 / self.num_steps, dtype=torch.float64)
        if bool((self.counts < self.history.shape[1]).any()):
            return uniform
        weights = self.history.pow(2).mean(dim=1).sqrt()
        weights = weights / weights.sum()
        return (1.0 - self.uniform_share) * weights + self.uniform_share * uniform

    def sample(
        self, batch_size: int, generator: torch.Generator | BatchShard
    ) -> tuple[Tensor, Tensor]:
        p = self.probabilities()
        t = multinomial_rows(p, batch_size, generator)
        return t, (1.0 / (self.num_steps * p.to(t.device)[t])).float()

    def update(self, t: Tensor, losses: Tensor) -> None:
        """Append each observed L_t to the history of its t, dropping the oldest when full."""
        size = self.history.shape[1]
        for step, loss in zip(t.tolist(), losses.detach().double().cpu().tolist(), strict=True):
            if self.counts[step] == size:
                self.history[step] = self.history[step].roll(-1)
                self.history[step, -1] = loss
            else:
                self.history[step, self.counts[step]] = loss
                self.counts[step] += 1

    def state_dict(self) -> dict[str, Tensor]:
        """The loss history, saved with a checkpoint so that a resumed run samples the same t."""
        return {"history": self.history.clone(), "counts": self.counts.clone()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        if state["history"].shape != self.history.shape:
            raise ValueError(
                f"timestep-sampler history has shape {tuple(state['history'].shape)}, "
                f"expected {tuple(self.history.shape)}"
            )
        self.history = state["history"].to(torch.float64).clone()
        self.counts = state["counts"].to(torch.long).clone()


class LogNormalTimesteps:
    """ln σ ~ N(P_mean, P_std²) (Karras et al. 2022, Table 1, "Training"), rounded to the grid's
    nearest log σ_t; all weights 1, so the objective itself moves to the middle noise levels.

    The grid's p_t is the normal mass of the log-σ interval around σ_t (ends open): exact for
    the rounding, and drawn like any table of probabilities.
    """

    def __init__(self, schedule: NoiseSchedule, mean: float, std: float) -> None:
        if not std > 0:
            raise ValueError(f"diffusion.lognormal_std must be positive, got {std}")
        log_sigmas = schedule.sigmas.double().log()
        edges = (log_sigmas[1:] + log_sigmas[:-1]) / 2
        cdf = torch.special.ndtr((edges - mean) / std)  # the normal distribution's CDF
        self.p = torch.diff(cdf, prepend=cdf.new_zeros(1), append=cdf.new_ones(1))

    def sample(
        self, batch_size: int, generator: torch.Generator | BatchShard
    ) -> tuple[Tensor, Tensor]:
        t = multinomial_rows(self.p, batch_size, generator)
        return t, torch.ones(batch_size, device=generator.device)

    def update(self, t: Tensor, losses: Tensor) -> None:
        """A fixed distribution learns nothing from the losses."""

    def state_dict(self) -> dict[str, Tensor]:
        """A fixed distribution has no state to checkpoint."""
        return {}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        """Nothing to restore."""


def timestep_sampler(
    kind: TimestepSampling, schedule: NoiseSchedule, mean: float = -1.2, std: float = 1.2
) -> TimestepSampler:
    """Uniform t (Algorithm 1), importance sampling by the loss's second moment (eq. 17), or
    EDM's log-normal noise levels with ``mean`` and ``std`` of ln σ."""
    if kind == "uniform":
        return UniformTimesteps(schedule.num_steps)
    if kind == "importance":
        return SecondMomentTimesteps(schedule.num_steps)
    if kind == "lognormal":
        return LogNormalTimesteps(schedule, mean, std)
    raise ValueError(
        f"unknown timestep sampling {kind!r}; choose 'uniform', 'importance' or 'lognormal'"
    )


def min_snr_weight(
    schedule: NoiseSchedule, parameterization: Parameterization, gamma: float
) -> Tensor:
    """Per-t weight so that the loss equals min(SNR_t, γ)·‖x_0 - x̂_0‖² (Hang et al. 2023, eq. 7).

    The squared ε-, x_0-, v-, score- and μ̃-errors are SNR, 1, SNR + 1, SNR·(SNR + 1) and c_x0²
    times the x_0-error, hence the divisors.

    Args:
        schedule: the noise schedule; SNR_t = ᾱ_t/(1-ᾱ_t) from its float64 ``log_snr``.
        parameterization: what the network predicts: "eps", "x0", "v", "score" or "mean".
        gamma: γ, the cap on SNR_t (5 in the paper); ``math.inf``: no cap, the loss
            SNR_t·‖x_0 - x̂_0‖² of ε-prediction.

    Returns:
        (T,) float64 weights w_t, to multiply the per-sample loss of the parameterization.
    """
    snr = schedule.log_snr.exp()
    divisor = {
        "eps": snr,
        "x0": torch.ones_like(snr),
        "v": snr + 1,
        "score": snr * (snr + 1),
        "mean": schedule.posterior_mean_coef_x0**2,
    }[parameterization]
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
    if weighting == "ncsn":  # λ(σ) = σ²: the loss is ‖ε̂ − ε‖² = SNR·‖x̂_0 − x_0‖²
        return min_snr_weight(schedule, parameterization, math.inf)
    raise ValueError(f"unknown loss weighting {weighting!r}; choose 'uniform', 'min_snr' or 'ncsn'")


def evaluate_noised(
    denoiser: NetworkDenoiser,
    timesteps: TimestepSampler,
    x0: Tensor,
    class_labels: Tensor | None,
    generator: torch.Generator | BatchShard,
) -> tuple[Tensor, Tensor, Tensor, NetworkOutput]:
    """t ~ p(t) with its importance weight, ε ~ N(0, I), and the network at x = x_0 + σ_t ε.

    Lines 2–5 of Algorithm 1 (Ho et al. 2020): q(x_t|x_0) (eq. 4) in VE coordinates, evaluated
    through the denoiser, which feeds the network x_t = x/√(1 + σ_t²) and t.
    """
    t, importance = timesteps.sample(x0.shape[0], generator)
    t, importance = t.to(x0.device), importance.to(x0.device)
    eps = randn_like(x0, generator)
    sigma = denoiser.schedule.sigmas.to(x0.device)[t]
    x = x0 + append_dims(sigma, x0).to(x0.dtype) * eps
    return t, importance, eps, denoiser.evaluate(x, sigma, class_labels)


class SimpleLoss:
    """E_{t,x_0,ε} w_t ‖target - f_θ(√ᾱ_t x_0 + √(1-ᾱ_t) ε, t)‖² (Ho et al. 2020, eq. 14).

    Written on the denoiser (as EDM's losses are): the network is evaluated through
    ``NetworkDenoiser.evaluate``, the one path sampling and guidance use, and its prediction is
    compared with the target of its parameterization (ε, x_0 or v).

    Args:
        schedule: the noise schedule the denoiser was built on (T = ``num_steps``).
        weights: (T,) per-t weights w_t (``min_snr_weight``, ``loss_weights``); None: all 1,
            Algorithm 1's L_simple.
        timesteps: draws t and its importance weight; None: ``UniformTimesteps`` over T.
    """

    def __init__(
        self,
        schedule: NoiseSchedule,
        weights: Tensor | None = None,
        timesteps: TimestepSampler | None = None,
    ) -> None:
        self.schedule = schedule
        self.weights = weights
        self.timesteps = timesteps or UniformTimesteps(schedule.num_steps)

    def __call__(
        self,
        denoiser: NetworkDenoiser,
        x0: Tensor,
        class_labels: Tensor | None,
        generator: torch.Generator | BatchShard,
    ) -> LossOutput:
        t, importance, eps, output = evaluate_noised(
            denoiser, self.timesteps, x0, class_labels, generator
        )
        target = training_target(
            denoiser.parameterization, x0, eps, output.x_t, output.alpha_bar, output.alpha_bar_prev
        )
        per_sample = (target - output.prediction.float()).pow(2).flatten(1).mean(1)
        if self.weights is not None:
            per_sample = per_sample * self.weights.to(x0.device)[t].to(per_sample.dtype)
        self.timesteps.update(t, per_sample.detach())
        return LossOutput((importance * per_sample).mean(), per_sample.detach(), t)


class HybridLoss:
    """L_hybrid = L_simple + λ L_vlb with learned Σ_θ (Nichol & Dhariwal 2021, §3.1, eq. 16).

    The denoiser's network outputs the parameterization's channels and, after them, r with
    v = (r + 1)/2 (eq. 15). L_vlb = T·L_t at the sampled t is computed with the mean's gradient
    stopped, so it trains only Σ_θ while L_simple trains the mean. With ``vlb_only`` the objective
    is L_vlb alone and trains both (§3.3); pair it with ``SecondMomentTimesteps``. The timestep
    sampler learns from the L_vlb terms. Per-sample values are in L_simple's units plus λ·T·L_t
    in bits/dim.

    With a fixed ``variance`` (σ_t² = β_t or β̃_t) and ``vlb_only`` it is the true bound of any
    parameterization with fixed isotropic Σ (Ho et al. 2020, eq. 5 and Table 2): L_t-1 =
    ‖μ̃(x_t, x_0) − μ_θ(x_t)‖²/(2σ_t²) + C, with μ_θ formed from the prediction's x̂_0.

    Args:
        schedule: the noise schedule the denoiser was built on (T = ``num_steps``).
        vlb_weight: λ, the weight of L_vlb (0.001 in the paper); ignored with ``vlb_only``.
        timesteps: draws t and its importance weight; None: ``UniformTimesteps`` over T.
        vlb_only: train on L_vlb alone (mean and variance), not L_simple + λ L_vlb.
        decoder: log p_θ(x_0|x_1) in nats for L_0, elementwise (x_0, mean, log_scale); by
            default DDPM's discretized Gaussian for 8-bit data.
        variance: Σ_θ: "learned" (the default; the network outputs v) or a fixed "beta",
            "beta_tilde" or "auto" (β̃), which need ``vlb_only``.
    """

    def __init__(
        self,
        schedule: NoiseSchedule,
        vlb_weight: float = 0.001,
        timesteps: TimestepSampler | None = None,
        vlb_only: bool = False,
        decoder: DecoderLogLikelihood = discretized_gaussian_log_likelihood,
        variance: ReverseVariance = "learned",
    ) -> None:
        if variance != "learned" and not vlb_only:
            raise ValueError("with a fixed variance only the bound itself (vlb_only) trains")
        self.schedule = schedule
        self.decoder = decoder
        self.vlb_weight = vlb_weight
        self.vlb_only = vlb_only
        self.variance = variance
        self.timesteps = timesteps or UniformTimesteps(schedule.num_steps)
        self._log_variance = schedule_log_variance(schedule, variance)

    def __call__(
        self,
        denoiser: NetworkDenoiser,
        x0: Tensor,
        class_labels: Tensor | None,
        generator: torch.Generator | BatchShard,
    ) -> LossOutput:
        if denoiser.learned_variance != (self.variance == "learned"):
            raise ValueError(
                f"a loss with variance {self.variance!r} needs a denoiser "
                f"{'with' if self.variance == 'learned' else 'without'} learned variances"
            )
        t, importance, eps, output = evaluate_noised(
            denoiser, self.timesteps, x0, class_labels, generator
        )
        prediction, v = output.prediction.float(), output.v
        mean_prediction = prediction if self.vlb_only else prediction.detach()  # eq. 16
        x0_hat = denoiser.x0_from(output, mean_prediction).to(torch.float64)
        x_t = output.x_t.to(torch.float64)
        mean = posterior_mean(self.schedule, x0_hat, x_t, t)
        log_variance = self._log_variance(x_t, t, None if v is None else v.to(torch.float64))
        vlb = self.schedule.num_steps * vlb_term_of_prediction(
            self.schedule, x0, x_t, t, mean, log_variance, self.decoder
        )
        if self.vlb_only:
            per_sample = vlb.float()
        else:
            target = training_target(
                denoiser.parameterization, x0, eps, output.x_t, output.alpha_bar,
                output.alpha_bar_prev,
            )  # fmt: skip
            mse = (target - prediction).pow(2).flatten(1).mean(1)
            per_sample = mse + self.vlb_weight * vlb.float()
        self.timesteps.update(t, vlb.detach())
        return LossOutput((importance * per_sample).mean(), per_sample.detach(), t)
