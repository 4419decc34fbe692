"""Inpainting by replacing the known region with noised measurements at every step."""

from __future__ import annotations

from torch import Tensor

from ddpmkit.core.randomness import Generator
from ddpmkit.core.schedules import ReverseVariance, check_variance
from ddpmkit.inverse.common import replace_known
from ddpmkit.samplers.ancestral import ancestral_steps
from ddpmkit.samplers.common import Sampler, SamplerRun


def replacement_loop(
    run: SamplerRun,
    grid: list[float],
    x: Tensor,
    generator: Generator,
    known: Tensor,
    mask: Tensor,
    *,
    variance: ReverseVariance = "auto",
) -> Tensor:
    """Ancestral steps, each followed by x_prev^known ~ q(x_prev|y) (Lugmayr et al. 2022, §4.1).

    Song et al. (2021, App. I.2)'s imputation with the DDPM reverse step. ``known`` holds y where
    ``mask`` is 1 (anything elsewhere) and has x_T's shape or broadcasts to it; the returned known
    pixels equal y exactly. Not an exact posterior sampler: the unknown region is denoised against
    independently noised copies of y, which carry less information than y itself.
    """
    check_variance(variance)

    def put_back_known(x_prev: Tensor, sigma_next: float) -> Tensor:
        return replace_known(x_prev, known, mask, sigma_next, generator)

    return ancestral_steps(run, grid, x, generator, variance, put_back_known)


inpaint_replacement = Sampler(replacement_loop, "linspace")
"""Replacement: ``inpaint_replacement(denoiser, sigmas, x_T, known, mask, generator=…)``."""
