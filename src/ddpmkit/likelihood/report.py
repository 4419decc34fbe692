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
from ddpmkit.likelihood.ode import ode_bits_per_dim
from ddpmkit.likelihood.vlb import schedule_log_variance, variational_bound

NLLMethod = Literal["vlb", "ode"]


@dataclass
class NLLReport:
    """Per-sample bits/dim and their mean with a 95% normal confidence interval."""

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


def evaluate_nll(
    denoiser: Denoiser,
    schedule: NoiseSchedule,
    dataset: Dataset,
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
    generator = torch.Generator().manual_seed(seed)
    loader = DataLoader(torch.utils.data.Subset(dataset, range(num_samples)), batch_size=batch_size)
    decoder = partial(discretized_gaussian_log_likelihood, num_levels=num_levels)
    per_sample, terms, priors, nfe, done = [], [], [], 0, 0
    start = time.perf_counter()
    for x0, _ in loader:
        if method == "vlb":
            on_rows = None
            if progress is not None:  # the bar moves by items, in fractions of T terms each
                share = len(x0) / schedule.num_steps
                on_rows = lambda rows, done=done, share=share: progress(  # noqa: E731
                    done + share * rows, num_samples
                )
            bound = variational_bound(
                denoiser, schedule, x0.double(), schedule_log_variance(schedule, variance),
                generator=generator, decoder=decoder, on_rows=on_rows,
            )  # fmt: skip
            per_sample.append(bound.total_bpd)
            terms.append(bound.sample_terms_bpd)
            priors.append(bound.prior_bpd)
            nfe += schedule.num_steps
        else:
            bits, result = ode_bits_per_dim(
                denoiser, schedule, x0.double(), generator=generator, num_levels=num_levels
            )
            per_sample.append(bits)
            nfe += result.nfe
        done += len(x0)
        if progress is not None:
            progress(done, num_samples)
    values = torch.cat(per_sample).float()
    mean, ci = mean_ci95(values)
    report = NLLReport(
        method, len(values), mean, ci, time.perf_counter() - start, nfe, values.tolist()
    )
    if terms:
        report.terms_bpd = torch.cat(terms).mean(0).tolist()
        report.prior_bpd = float(torch.cat(priors).mean())
        report.distortion_bpd = report.terms_bpd[0]
        report.rate_bpd = report.prior_bpd + sum(report.terms_bpd[1:])
    return report
