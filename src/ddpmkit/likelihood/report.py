"""Bits/dim of a dataset under a trained model, with a confidence interval and a JSON-ready report."""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Literal

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from ddpmkit.core.denoisers import Denoiser
from ddpmkit.core.schedules import NoiseSchedule, ReverseVariance
from ddpmkit.likelihood.gaussian import discretized_gaussian_log_likelihood
from ddpmkit.likelihood.ode import ode_bits_per_dim, ode_log_likelihood
from ddpmkit.likelihood.vlb import schedule_log_variance, variational_bound

NLLMethod = Literal["vlb", "ode"]


@dataclass
class NLLReport:
    """Per-sample bits/dim and their mean with a 95% normal confidence interval.

    Attributes:
        method: "vlb" (the variational bound, all T terms) or "ode" (the probability-flow ODE).
        num_samples: n, the number of items evaluated.
        bits_per_dim: the mean of ``per_sample``: the bound (vlb) or the dequantized
            likelihood (ode) in bits/dim; a latent model's ODE value is the continuous
            density's -log₂ p(x)/D, without dequantization.
        ci95: the half-width 1.96·s/√n of the mean's 95% interval (NaN for n = 1).
        seconds: the evaluation's wall-clock time.
        nfe: denoiser calls over all batches: T per batch for the bound, the RK45 solver's
            evaluations for the ODE.
        per_sample: (n,) each item's bits/dim.
        terms_bpd: vlb: the item means of L_0 … L_{T-1} in bits/dim (L_0 the decoder);
            None for the ODE.
        prior_bpd: vlb: the mean prior term L_T = KL(q(x_T|x_0) ‖ N(0, I)); None for the ODE.
        rate_bpd: vlb: L_T + L_{T-1} + … + L_1, the rate (Ho et al. 2020, Table 2); None
            for the ODE.
        distortion_bpd: vlb: L_0, the distortion; None for the ODE.
    """

    method: str
    num_samples: int
    bits_per_dim: float
    ci95: float
    seconds: float
    nfe: int
    per_sample: list[float] = field(repr=False)
    terms_bpd: list[float] | None = field(default=None, repr=False)  # vlb: L_0 … L_{T-1}
    prior_bpd: float | None = None  # vlb: L_T
    rate_bpd: float | None = None  # vlb: L_T + L_{T-1} + … + L_1
    distortion_bpd: float | None = None  # vlb: L_0

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def rate_distortion_table(self, num_ranges: int = 4) -> list[str]:
        """Rows 'term | bits/dim': L_T, the sums of L_t over ``num_ranges`` ranges of t, L_0, rate
        and distortion (Ho et al. 2020, Table 2); empty for the ODE."""
        if self.terms_bpd is None or self.prior_bpd is None:
            return []
        terms, rows = self.terms_bpd, [f"L_T (prior)          {self.prior_bpd:8.4f}"]
        edges = [1 + round(i * (len(terms) - 1) / num_ranges) for i in range(num_ranges + 1)]
        for low, high in reversed(list(itertools.pairwise(edges))):
            rows.append(f"L_t, t = {low:4d}…{high - 1:4d}  {sum(terms[low:high]):8.4f}")
        rows += [
            f"L_0 (decoder)        {terms[0]:8.4f}",
            f"rate (L_T … L_1)     {self.rate_bpd:8.4f}",
            f"distortion (L_0)     {self.distortion_bpd:8.4f}",
        ]
        return rows


def mean_ci95(values: Tensor) -> tuple[float, float]:
    """The mean and the half-width 1.96·s/√n of its 95% normal confidence interval."""
    n = values.numel()
    spread = float(values.std()) if n > 1 else float("nan")
    return float(values.mean()), 1.96 * spread / math.sqrt(n)


@dataclass
class NLLValues:
    """Per-item bits/dim of some items, with the bound's terms per item (vlb only)."""

    bits: Tensor  # (n,)
    terms: Tensor | None  # (n, T): L_0 … L_{T-1} in bits/dim
    prior: Tensor | None  # (n,): L_T in bits/dim
    nfe: int


def batch_generator(seed: int, index: int) -> torch.Generator:
    """The generator of batch ``index``: a batch's noise depends on its place, not on which
    batches were evaluated before it (so batches can be split over processes)."""
    return torch.Generator().manual_seed(seed * 1_000_003 + index)


def nll_values(
    denoiser: Denoiser,
    schedule: NoiseSchedule,
    dataset: Dataset[tuple[Tensor, Tensor]],
    method: NLLMethod,
    *,
    batch_size: int,
    batches: range,
    num_items: int,
    num_levels: int = 256,
    variance: ReverseVariance = "auto",
    seed: int = 0,
    progress: Callable[[float, int], None] | None = None,
    continuous: bool = False,
) -> NLLValues:
    """Bits/dim of the items of batches ``batches`` (of ``batch_size``) among the first
    ``num_items``: the full bound (all T terms) or the probability-flow ODE. ``continuous``
    data (a latent model's latents) get the ODE's density −log₂ p(x)/D, without dequantization;
    the bound's decoder is for discrete data only."""
    if continuous and method == "vlb":
        raise ValueError(
            "the variational bound's decoder L_0 is for discrete pixels; continuous data (latents) "
            "have a density: use the probability-flow ODE (--nll ode)"
        )
    decoder = partial(discretized_gaussian_log_likelihood, num_levels=num_levels)
    first, stop = batches.start * batch_size, min(batches.stop * batch_size, num_items)
    items = torch.utils.data.Subset(dataset, range(first, stop))
    bits, terms, priors, nfe, done = [], [], [], 0, 0
    for index, (x0, _) in zip(batches, DataLoader(items, batch_size=batch_size), strict=True):
        generator = batch_generator(seed, index)
        if method == "vlb":
            on_rows = None
            if progress is not None:  # the bar moves by items, in fractions of T terms each
                share = len(x0) / schedule.num_steps
                on_rows = lambda rows, done=done, share=share: progress(  # noqa: E731
                    done + share * rows, len(items)
                )
            bound = variational_bound(
                denoiser, schedule, x0.double(), schedule_log_variance(schedule, variance),
                generator=generator, decoder=decoder, on_rows=on_rows,
            )  # fmt: skip
            bits.append(bound.total_bpd)
            terms.append(bound.sample_terms_bpd)
            priors.append(bound.prior_bpd)
            nfe += schedule.num_steps
        elif continuous:
            result = ode_log_likelihood(denoiser, schedule, x0.double(), generator=generator)
            bits.append(-result.log_likelihood / (x0[0].numel() * math.log(2.0)))
            nfe += result.nfe
        else:
            values, result = ode_bits_per_dim(
                denoiser, schedule, x0.double(), generator=generator, num_levels=num_levels
            )
            bits.append(values)
            nfe += result.nfe
        done += len(x0)
        if progress is not None:
            progress(done, len(items))
    return NLLValues(
        torch.cat(bits).double().cpu(),
        torch.cat(terms).double().cpu() if terms else None,
        torch.cat(priors).double().cpu() if priors else None,
        nfe,
    )


def nll_report(method: NLLMethod, values: NLLValues, seconds: float) -> NLLReport:
    """The mean bits/dim with its 95% interval and, for the bound, its terms (Ho et al. 2020,
    eq. 5: L_T + Σ_{t>1} L_{t-1} + L_0)."""
    bits = values.bits.float()
    mean, ci = mean_ci95(bits)
    report = NLLReport(method, len(bits), mean, ci, seconds, values.nfe, bits.tolist())
    if values.terms is not None and values.prior is not None:
        report.terms_bpd = values.terms.mean(0).tolist()
        report.prior_bpd = float(values.prior.mean())
        report.distortion_bpd = report.terms_bpd[0]
        report.rate_bpd = report.prior_bpd + sum(report.terms_bpd[1:])
    return report


def evaluate_nll(
    denoiser: Denoiser,
    schedule: NoiseSchedule,
    dataset: Dataset[tuple[Tensor, Tensor]],
    method: NLLMethod,
    *,
    num_samples: int,
    batch_size: int,
    num_levels: int = 256,
    variance: ReverseVariance = "auto",
    seed: int = 0,
    progress: Callable[[float, int], None] | None = None,
) -> NLLReport:
    """Bits/dim of the first ``num_samples`` items: the full bound (all T terms) or the ODE."""
    start = time.perf_counter()
    values = nll_values(
        denoiser, schedule, dataset, method, batch_size=batch_size,
        batches=range(-(-num_samples // batch_size)), num_items=num_samples,
        num_levels=num_levels, variance=variance, seed=seed, progress=progress,
    )  # fmt: skip
    return nll_report(method, values, time.perf_counter() - start)
