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
"""Replacement: ``inpaint_replacement(denoiser, sigmas, x_T, known, mask, generator=…)``.

Ancestral steps, each followed by putting back the known pixels noised to the new level
(Lugmayr et al. 2022, §4.1); default grid "linspace"; one denoiser call per step, none extra.

Args:
    denoiser (Denoiser): D(x; σ) ≈ E[x_0 | x] for x = x_t/√ᾱ in VE coordinates, called on the
        whole batch with ``class_labels``; its learned variance fraction v, if any, is read.
    sigmas (Tensor): the noise grid σ_0 > σ_1 > … > σ_N = 0, 1-D, descending and ending in 0
        (``build_grid``); N steps, read as float64 Python floats.
    x_T (Tensor): (B, …) standard normal noise, the VP prior N(0, I); the chain starts there.
    known (Tensor): y, the image whose pixels are kept where ``mask`` is 1 (anything
        elsewhere), x_T's shape or broadcastable to it, in data units.
    mask (Tensor): 1 at the known pixels, 0 elsewhere, broadcastable to x_T.

Keyword Args:
    generator (Generator): the steps' noise and the known pixels' noise: a
        ``torch.Generator``, a ``PerSampleGenerator`` (row i from its own seed) or None
        (the default: PyTorch's global RNG).
    class_labels (Tensor | None): (B,) labels passed to every denoiser call; None (the default):
        unconditional.
    record_trajectory (bool): keep x_T, …, x_0 (VP coordinates, on the CPU) in the result's
        ``trajectory`` (False by default).
    callback (StepCallback | None): called as ``callback(steps done, N, x_t)`` after every
        step (x_t in VP coordinates); None (the default): no reports.
    variance (ReverseVariance): σ² of a step: "beta_tilde" (β̃), "beta" (β = 1 - ᾱ_t/ᾱ_prev),
        "learned" (Σ_θ of eq. 15; the denoiser must give v) or "auto" (the default: learned
        when the denoiser gives v, else β̃).

Returns:
    (SampleResult): x_0 (B, …) with the known pixels equal to y, the trajectory when recorded,
        and nfe = N denoiser calls.
"""
