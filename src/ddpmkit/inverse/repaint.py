"""RePaint: inpainting by replacement with resampling (Lugmayr et al. 2022, Algorithm 1)."""

from __future__ import annotations

import itertools
from typing import cast

from torch import Tensor

from ddpmkit.core.parameterization import alpha_bar_from_sigma
from ddpmkit.core.randomness import Generator, randn_like
from ddpmkit.core.schedules import ReverseVariance, check_variance
from ddpmkit.inverse.common import replace_known
from ddpmkit.samplers.ancestral import ancestral_step
from ddpmkit.samplers.common import Sampler, SamplerRun


def repaint_path(num_steps: int, jump_length: int, resamplings: int) -> list[int]:
    """Grid positions 0 … num_steps visited by RePaint (Lugmayr et al. 2022, §4.2).

    Down one level per step; at positions num_steps - 1, num_steps - 1 - j, … (those ≥ j) back up
    j = ``jump_length`` levels, ``resamplings`` - 1 times each, so every stretch is denoised r
    times. The last step, to σ = 0, is taken once. The official code's ``get_schedule_jump``.
    """
    if jump_length < 1 or resamplings < 1:
        raise ValueError(
            f"jump_length and resamplings must be >= 1, got {jump_length} and {resamplings}"
        )
    jumps = dict.fromkeys(range(num_steps - 1, jump_length - 1, -jump_length), resamplings - 1)
    position, path = 0, [0]
    while position < num_steps:
        position += 1
        path.append(position)
        if jumps.get(position, 0) > 0:
            jumps[position] -= 1
            path.extend(range(position - 1, position - jump_length - 1, -1))
            position -= jump_length
    return path


def forward_step(x: Tensor, sigma: float, sigma_up: float, generator: Generator) -> Tensor:
    """x_b = √(ᾱ_b/ᾱ_a) x_a + √(1 - ᾱ_b/ᾱ_a) ε: q(x_b|x_a) up one level (DDPM eq. 2, respaced)."""
    ratio = alpha_bar_from_sigma(sigma_up) / alpha_bar_from_sigma(sigma)
    return cast(Tensor, ratio**0.5 * x + (1.0 - ratio) ** 0.5 * randn_like(x, generator))


def repaint_loop(
    run: SamplerRun,
    grid: list[float],
    x: Tensor,
    generator: Generator,
    known: Tensor,
    mask: Tensor,
    *,
    jump_length: int = 10,
    resamplings: int = 10,
    variance: ReverseVariance = "auto",
) -> Tensor:
    """Replacement steps, resampled by jumping back with the forward kernel (Algorithm 1).

    ``repaint_path`` gives the schedule (j = 10, r = 10 in the paper); r = 1 is exactly
    ``inpaint_replacement``. ``known`` and ``mask`` are as there; the known pixels of the result
    equal y exactly. Every visited level is recorded and reported as a step.
    """
    check_variance(variance)
    path = repaint_path(len(grid) - 1, jump_length, resamplings)
    run.num_steps = len(path) - 1  # progress counts every visited level, jumps back included
    for here, there in itertools.pairwise(path):
        sigma, sigma_next = grid[here], grid[there]
        if there > here:
            x0_hat, v = run.predict_vp(x, sigma)
            x = ancestral_step(x, x0_hat, v, sigma, sigma_next, variance, generator)
            x = replace_known(x, known, mask, sigma_next, generator)
        else:
            x = forward_step(x, sigma, sigma_next, generator)
        run.record(x)
    return x


repaint = Sampler(repaint_loop, "linspace")
"""RePaint: ``repaint(denoiser, sigmas, x_T, known, mask, jump_length=j, resamplings=r, …)``.

Replacement steps down the grid, jumping back ``jump_length`` levels with q(x_b|x_a) and
denoising again (Lugmayr et al. 2022, Algorithm 1; the path is ``repaint_path``); default grid
"linspace"; one denoiser call per downward step of the path.

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
    generator (Generator): the steps', the jumps' and the known pixels' noise: a
        ``torch.Generator``, a ``PerSampleGenerator`` (row i from its own seed) or None
        (the default: PyTorch's global RNG).
    class_labels (Tensor | None): (B,) labels passed to every denoiser call; None (the default):
        unconditional.
    record_trajectory (bool): keep x_T, …, x_0 (VP coordinates, on the CPU) in the result's
        ``trajectory`` (False by default).
    callback (StepCallback | None): called as ``callback(steps done, M, x_t)`` after every
        step, M = the path's visited levels, jumps back included (x_t in VP coordinates); None (the
        default): no reports.
    jump_length (int): j, the levels jumped back at a time (10 by default, as in the paper).
    resamplings (int): r, how often each stretch is denoised; r = 1 is ``inpaint_replacement``
        (10 by default, as in the paper).
    variance (ReverseVariance): σ² of a step: "beta_tilde" (β̃), "beta" (β = 1 - ᾱ_t/ᾱ_prev),
        "learned" (Σ_θ of eq. 15; the denoiser must give v) or "auto" (the default: learned
        when the denoiser gives v, else β̃).

Returns:
    (SampleResult): x_0 (B, …) with the known pixels equal to y, the trajectory when recorded
        (every visited level), and nfe, the downward steps of the path.
"""
