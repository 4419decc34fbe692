"""The variational bound of Ho et al. (2020), eq. 5, term by term, in bits per dimension.

With 0-based rows (row t is the paper's step t + 1) the term computed at row t is the paper's
L_t: row 0 gives the decoder L_0 = -log p_θ(x_0|x_1) and row t ≥ 1 gives
L_t = KL(q(x_t|x_{t+1}, x_0) ‖ p_θ(x_t|x_{t+1})) in the paper's indices; the prior term is
L_T = KL(q(x_T|x_0) ‖ N(0, I)). The bound is L_T + Σ_{t=0}^{T-1} L_t (eq. 5).

p_θ(x_{t-1}|x_t) has the mean μ̃_t(x_t, x̂_0) of the posterior at the denoiser's x̂_0 (eq. 7,
which equals eq. 11 for an ε-network) and a log variance from a pluggable
``reverse_log_variance(x_t, t, v)``; ``schedule_log_variance`` gives σ_t² = β_t or β̃_t (§3.2)
or the learned Σ_θ of Nichol & Dhariwal (2021, eq. 15) from the denoiser's v.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial

import torch
from torch import Tensor

from ddpmkit.core.denoisers import Denoiser, predict_with_variance
from ddpmkit.core.forward import posterior_mean, q_sample
from ddpmkit.core.randomness import randn_like
from ddpmkit.core.schedules import (
    NoiseSchedule,
    ReverseVariance,
    check_variance,
    choose_log_variance,
)
from ddpmkit.core.thresholding import ClippedDenoiser
from ddpmkit.likelihood.gaussian import discretized_gaussian_log_likelihood, normal_kl

ReverseLogVariance = Callable[[Tensor, Tensor, Tensor | None], Tensor]
"""(x_t, t, v) -> log σ_t² of p_θ(x_{t-1}|x_t), broadcastable against x_t (VP coordinates);
v is the denoiser's learned variance fraction, or None."""

DecoderLogLikelihood = Callable[[Tensor, Tensor, Tensor], Tensor]
"""(x_0, mean, log_scale) -> elementwise log p_θ(x_0|x_1) in nats."""

Clip = tuple[float, float] | None


def schedule_log_variance(
    schedule: NoiseSchedule, variance: ReverseVariance = "auto"
) -> ReverseLogVariance:
    """σ_t² = β_t or β̃_t (Ho et al. 2020, §3.2), or Σ_θ between them (Nichol & Dhariwal, eq. 15).

    "beta" uses β_1 itself for the decoder, as in the original DDPM code; "beta_tilde" has
    β̃_1 = 0 replaced by β̃_2 (improved-diffusion's clipped table), and so has the lower end of
    the learned interpolation. "auto" is the learned Σ_θ when v is given, else β̃.
    """
    check_variance(variance)
    log_beta, log_beta_tilde = schedule.betas.log(), schedule.posterior_log_variance_clipped

    def reverse_log_variance(x_t: Tensor, t: Tensor, v: Tensor | None) -> Tensor:
        log_variance = choose_log_variance(
            variance, v, schedule.at(log_beta, t, x_t), schedule.at(log_beta_tilde, t, x_t)
        )
        return torch.as_tensor(log_variance)

    return reverse_log_variance


@dataclass(frozen=True)
class VariationalBound:
    """The bound of eq. 5 for a batch, in bits/dim (nats / (D·ln 2)); D = ``dims``."""

    total_bpd: Tensor  # (B,) per-sample bound L_T + Σ_t L_t
    prior_bpd: Tensor  # (B,) per-sample L_T
    sample_terms_bpd: Tensor  # (B, T) per-sample L_0 … L_{T-1}
    dims: int  # D, the number of dimensions per sample

    @property
    def terms_bpd(self) -> Tensor:
        """(T,) L_0 … L_{T-1} averaged over the batch (L_0 is the decoder)."""
        return self.sample_terms_bpd.mean(dim=0)

    @property
    def mean_bpd(self) -> Tensor:
        """The batch mean of the bound: ``terms_bpd.sum() + prior_bpd.mean()``."""
        return self.total_bpd.mean()

    @property
    def total_nats(self) -> Tensor:
        """(B,) the bound in nats per sample."""
        return self.total_bpd * (self.dims * math.log(2.0))


def _nats_to_bpd(nats: Tensor, x0: Tensor) -> Tensor:
    """Sum over each sample's dimensions, then divide by D·ln 2: (B, …) -> (B,) bits/dim."""
    return nats.flatten(1).sum(dim=1) / (x0[0].numel() * math.log(2.0))


def prior_kl_bpd(schedule: NoiseSchedule, x0: Tensor) -> Tensor:
    """(B,) L_T = KL(q(x_T|x_0) ‖ N(0, I)) in bits/dim (Ho et al. 2020, eq. 5)."""
    x0 = x0.to(torch.float64)
    last = torch.full((x0.shape[0],), schedule.num_steps - 1, dtype=torch.long)
    mean = schedule.at(schedule.sqrt_alpha_bar, last, x0) * x0
    logvar = schedule.at(schedule.sqrt_one_minus_alpha_bar, last, x0).log() * 2.0
    return _nats_to_bpd(normal_kl(mean, logvar, 0.0, 0.0), x0)


def reverse_mean_log_variance(
    denoiser: Denoiser,
    schedule: NoiseSchedule,
    x_t: Tensor,
    t: Tensor,
    reverse_log_variance: ReverseLogVariance,
    class_labels: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Mean μ̃_t(x_t, x̂_0) and log variance of p_θ(x_{t-1}|x_t), float64 (eqs. 7 and 11)."""
    t = t.to(x_t.device)
    alpha_bar = schedule.at(schedule.alpha_bar, t, x_t)
    sigma = schedule.sigmas.to(x_t.device)[t].to(x_t.dtype)  # (B,)
    x0_hat, v = predict_with_variance(denoiser, x_t / alpha_bar.sqrt(), sigma, class_labels)
    mean = posterior_mean(schedule, x0_hat.to(torch.float64), x_t.to(torch.float64), t)
    v = None if v is None else v.to(torch.float64)
    return mean, reverse_log_variance(x_t, t, v).to(torch.float64)


def vlb_term_of_prediction(
    schedule: NoiseSchedule,
    x0: Tensor,
    x_t: Tensor,
    t: Tensor,
    mean: Tensor,
    log_variance: Tensor,
    decoder: DecoderLogLikelihood = discretized_gaussian_log_likelihood,
) -> Tensor:
    """(B,) L_t in bits/dim for p_θ(x_{t-1}|x_t) = N(mean, exp(log_variance)) (eq. 5).

    Row 0 gives the decoder term -log p_θ(x_0|x_1) (eq. 13), other rows the KL between the
    posterior q(x_{t-1}|x_t, x_0) (eqs. 6–7) and p_θ; float64 and differentiable.
    """
    x0_64, x_t64 = x0.to(torch.float64), x_t.to(torch.float64)
    true_mean = posterior_mean(schedule, x0_64, x_t64, t)
    true_log_variance = schedule.at(schedule.posterior_log_variance_clipped, t, x0_64)
    terms = _nats_to_bpd(normal_kl(true_mean, true_log_variance, mean, log_variance), x0)
    first = t.to(x0.device) == 0
    if first.any():
        log_scale = (0.5 * log_variance).expand_as(mean)
        decoder_nll = _nats_to_bpd(-decoder(x0_64, mean, log_scale).to(torch.float64), x0)
        terms = torch.where(first, decoder_nll, terms)
    return terms


def vlb_term(
    denoiser: Denoiser,
    schedule: NoiseSchedule,
    x0: Tensor,
    t: Tensor,
    noise: Tensor,
    reverse_log_variance: ReverseLogVariance,
    *,
    clip: Clip = (-1.0, 1.0),
    decoder: DecoderLogLikelihood = discretized_gaussian_log_likelihood,
    class_labels: Tensor | None = None,
) -> Tensor:
    """(B,) L_t in bits/dim at per-sample rows t, x_t = q_sample(x_0, t, noise) (eq. 5).

    The denoiser's p_θ(x_{t-1}|x_t) scored by ``vlb_term_of_prediction``; differentiable.
    """
    if clip is not None:
        denoiser = ClippedDenoiser(denoiser, *clip)
    x_t = q_sample(schedule, x0, t, noise)
    mean, log_variance = reverse_mean_log_variance(
        denoiser, schedule, x_t, t, reverse_log_variance, class_labels
    )
    return vlb_term_of_prediction(schedule, x0, x_t, t, mean, log_variance, decoder)


TermFunction = Callable[..., Tensor]
"""(x_0, t, noise, class_labels=…) -> (B,) L_t in bits/dim: ``vlb_term`` with options bound."""


def _row_groups(num_steps: int, batch: int, max_batch: int) -> Iterator[range]:
    """Consecutive groups of rows t, about ``max_batch`` (t, sample) pairs per group."""
    per_group = max(1, max_batch // batch)
    for start in range(0, num_steps, per_group):
        yield range(start, min(start + per_group, num_steps))


def _all_terms(
    term: TermFunction,
    x0: Tensor,
    class_labels: Tensor | None,
    num_steps: int,
    generator: torch.Generator | None,
    max_batch: int,
    on_rows: Callable[[int], None] | None = None,
) -> Tensor:
    """(B, T) every L_t, the noise of row t drawn for the whole batch in the order t = 0, 1, …

    ``on_rows`` is told how many of the T rows are done after each group of rows."""
    batch, columns = x0.shape[0], []
    for rows in _row_groups(num_steps, batch, max_batch):
        noise = torch.cat([randn_like(x0, generator) for _ in rows])  # t-major: (t, sample)
        t = torch.arange(rows.start, rows.stop, device=x0.device).repeat_interleave(batch)
        x0_rows = x0.repeat(len(rows), *([1] * (x0.ndim - 1)))
        labels = None if class_labels is None else class_labels.repeat(len(rows))
        pieces = []
        for start in range(0, len(t), max_batch):
            piece = slice(start, start + max_batch)
            piece_labels = None if labels is None else labels[piece]
            pieces.append(term(x0_rows[piece], t[piece], noise[piece], class_labels=piece_labels))
        columns.append(torch.cat(pieces).reshape(len(rows), batch).T)
        if on_rows is not None:
            on_rows(rows.stop)
    return torch.cat(columns, dim=1)


@torch.no_grad()
def variational_bound(
    denoiser: Denoiser,
    schedule: NoiseSchedule,
    x0: Tensor,
    reverse_log_variance: ReverseLogVariance,
    *,
    generator: torch.Generator | None = None,
    clip: Clip = (-1.0, 1.0),
    decoder: DecoderLogLikelihood = discretized_gaussian_log_likelihood,
    class_labels: Tensor | None = None,
    max_batch: int = 1024,
    on_rows: Callable[[int], None] | None = None,
) -> VariationalBound:
    """All T + 1 terms of eq. 5 for a batch x_0, each x_t drawn once from q(x_t|x_0) (eq. 4).

    The result does not depend on ``max_batch``, which only bounds how many (t, sample) pairs
    go to the denoiser at once (rows of several t are stacked when the batch is small);
    ``on_rows(done)`` reports progress in rows t of the T.

    Args:
        denoiser: D(x; σ) ≈ E[x_0 | x] for x = x_t/√ᾱ in VE coordinates; its learned variance
            fraction v, if any, is passed to ``reverse_log_variance``.
        schedule: the noise schedule of the T + 1 terms (float64 tables).
        x0: (B, …) the data, in [-1, 1] for the discretized decoder; evaluated in its dtype by
            the denoiser, the terms in float64.
        reverse_log_variance: (x_t, t, v) -> log σ_t² of p_θ(x_{t-1}|x_t)
            (``schedule_log_variance``).
        generator: draws the noise of every x_t, row t for the whole batch in the order
            t = 0, 1, …; None: PyTorch's global RNG.
        clip: x̂_0 is clipped to this (low, high) (``ClippedDenoiser``); None: not clipped.
        decoder: (x_0, mean, log_scale) -> elementwise log p_θ(x_0|x_1) in nats for L_0;
            DDPM's discretized Gaussian for 8-bit data by default.
        class_labels: (B,) labels passed to every denoiser call; None: unconditional.
        max_batch: the most (t, sample) pairs per denoiser call.
        on_rows: called with the number of rows t done after each group of rows; None: no
            reports.

    Returns:
        Per sample, the bound L_T + Σ_t L_t, the prior term L_T and the T terms
            L_0 … L_{T-1}, in bits/dim.
    """

    term = partial(
        vlb_term,
        denoiser,
        schedule,
        reverse_log_variance=reverse_log_variance,
        clip=clip,
        decoder=decoder,
    )
    terms = _all_terms(term, x0, class_labels, schedule.num_steps, generator, max_batch, on_rows)
    prior = prior_kl_bpd(schedule, x0)
    return VariationalBound(prior + terms.sum(dim=1), prior, terms, x0[0].numel())


def sampled_vlb_estimate(
    denoiser: Denoiser,
    schedule: NoiseSchedule,
    x0: Tensor,
    reverse_log_variance: ReverseLogVariance,
    *,
    generator: torch.Generator | None = None,
    clip: Clip = (-1.0, 1.0),
    decoder: DecoderLogLikelihood = discretized_gaussian_log_likelihood,
    class_labels: Tensor | None = None,
) -> Tensor:
    """(B,) L_T + T·L_t with t ~ U{0, …, T-1} per sample: an unbiased estimate of the bound.

    One denoiser call per sample instead of T (Nichol & Dhariwal 2021, §3.3, uniform t);
    differentiable, in bits/dim.
    """
    num_steps = schedule.num_steps
    device = generator.device if generator is not None else x0.device
    t = torch.randint(0, num_steps, (x0.shape[0],), generator=generator, device=device)
    t = t.to(x0.device)
    noise = randn_like(x0, generator)
    term = vlb_term(
        denoiser,
        schedule,
        x0,
        t,
        noise,
        reverse_log_variance,
        clip=clip,
        decoder=decoder,
        class_labels=class_labels,
    )
    return prior_kl_bpd(schedule, x0) + num_steps * term
