"""What every sampler shares: the grid's levels, the prior, NFE counting, trajectory and progress.

Samplers walk a grid of noise levels σ_0 > … > σ_N = 0 (``ddpmkit.core.grids``) starting from standard
normal noise x_T (the VP prior N(0, I)); VE-coordinate samplers scale it to x = x_T·√(1 + σ_0²).
They return x_0, and record the trajectory in VP coordinates x_t = x/√(1 + σ²) when asked.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ddpmkit.core.denoisers import Denoiser, network_evaluations, predict_with_variance
from ddpmkit.core.grids import GridKind
from ddpmkit.core.randomness import Generator

StepCallback = Callable[[int, int, Tensor], None]
"""Called with (steps done, steps in total, current x) after every step of a sampler."""


@dataclass
class SampleResult:
    """Final samples, the trajectory x_T … x_0 when it was recorded, and the work done.

    Attributes:
        samples: (B, …) x_0, the sampler's output (VP and VE coordinates agree at σ = 0).
        trajectory: the states x_T, …, x_0 in VP coordinates x_t = x/√(1 + σ²), detached and
            on the CPU; None unless the sampler was called with ``record_trajectory=True``.
        nfe: the sampler's denoiser calls, each on the whole batch.
        evaluations_per_call: network evaluations per sample in one denoiser call, as the
            denoiser declares them: 1 for a plain denoiser, 2 under classifier-free guidance
            (1 at w = 0 or 1) and autoguidance (1 at w = 1).
    """

    samples: Tensor
    trajectory: list[Tensor] | None
    nfe: int  # the sampler's denoiser calls (each denoises the whole batch)
    evaluations_per_call: int = 1  # network evaluations per denoiser call (guidance: 2)

    @property
    def network_evaluations(self) -> int:
        """The network evaluations of ``nfe`` denoiser calls, guidance included."""
        return self.nfe * self.evaluations_per_call


def levels(sigmas: Tensor) -> list[float]:
    """The grid as Python floats (float64): per-step scalars cost nothing on any device."""
    if sigmas.ndim != 1 or len(sigmas) < 2 or float(sigmas[-1]) != 0.0:
        raise ValueError("a sampling grid is a decreasing 1-D tensor of noise levels ending in 0")
    return [float(s) for s in sigmas]


class SamplerRun:
    """Bookkeeping for one sampling run: counts denoiser calls, records states, reports progress."""

    def __init__(
        self,
        denoiser: Denoiser,
        class_labels: Tensor | None,
        num_steps: int,
        record_trajectory: bool = False,
        callback: StepCallback | None = None,
    ) -> None:
        self.denoiser, self.class_labels = denoiser, class_labels
        self.num_steps, self.callback = num_steps, callback
        self.trajectory: list[Tensor] | None = [] if record_trajectory else None
        self.nfe = self.steps_done = 0

    def denoise(self, x: Tensor, sigma: float) -> Tensor:
        """x̂_0 = D(x; σ) for x in VE coordinates; one network evaluation."""
        self.nfe += 1
        return self.denoiser(x, sigma, self.class_labels)

    def denoise_vp(self, x_t: Tensor, sigma: float) -> Tensor:
        """x̂_0 for x_t in VP coordinates at level σ: D(x_t/√ᾱ; σ)."""
        return self.denoise(x_t * (1.0 + sigma**2) ** 0.5, sigma)

    def predict_vp(self, x_t: Tensor, sigma: float) -> tuple[Tensor, Tensor | None]:
        """``denoise_vp`` and the learned variance fraction v (None if the denoiser has none)."""
        self.nfe += 1
        x = x_t * (1.0 + sigma**2) ** 0.5
        return predict_with_variance(self.denoiser, x, sigma, self.class_labels)

    def record(self, x_t: Tensor, step_done: bool = True) -> None:
        """Keep x_t (VP coordinates) when recording; report a finished step to the callback."""
        if self.trajectory is not None:
            self.trajectory.append(x_t.detach().cpu())
        if step_done:
            self.steps_done += 1
            if self.callback is not None:
                self.callback(self.steps_done, self.num_steps, x_t)

    def advance_to(self, steps_done: int, x_t: Tensor) -> None:
        """Report progress up to ``steps_done`` without recording (adaptive solvers)."""
        if steps_done > self.steps_done:
            self.steps_done = steps_done
            if self.callback is not None:
                self.callback(self.steps_done, self.num_steps, x_t)

    def record_ve(self, x: Tensor, sigma: float, step_done: bool = True) -> None:
        """``record`` for x in VE coordinates at level σ."""
        self.record(x / (1.0 + sigma**2) ** 0.5, step_done)

    def result(self, x0: Tensor) -> SampleResult:
        return SampleResult(x0, self.trajectory, self.nfe, network_evaluations(self.denoiser))


SamplerLoop = Callable[..., Tensor]
"""loop(run, grid, x, generator, *inputs, **options) -> x_0: a sampler's mathematics alone."""


@dataclass(frozen=True)
class Sampler:
    """A sampler: its loop (the mathematics) and the facts the registry needs about it.

    Calling it runs the part every sampler shares: the grid's levels, the bookkeeping of
    ``SamplerRun`` (NFE, trajectory, progress), the start x = x_T (VP) or x_T·√(1 + σ_0²) (VE),
    and ``no_grad``; ``inputs`` (a measurement, a mask, …) and ``options`` go to the loop.
    Every sampler is called as ``sampler(denoiser, sigmas, x_T, *inputs, generator=None,
    class_labels=None, record_trajectory=False, callback=None, **options)``: the denoiser
    D(x; σ), the descending noise grid ending in 0, the standard normal start, the source of the
    steps' noise, the labels every denoiser call gets, whether to keep the states, and a
    progress callback (``__call__``; each sampler's own docstring details them with its options).
    """

    loop: SamplerLoop
    default_grid: GridKind
    ve: bool = False  # the loop works in VE coordinates x = x_t·√(1 + σ²)
    calls_per_level: int = 1  # Heun and predictor–corrector evaluate twice per level
    saves_last_call: bool = False  # the step to σ = 0 costs one call, not calls_per_level
    calls_per_level_option: str | None = None  # adds its value - 1 calls (Langevin, corrector)
    final_calls: int = 0  # calls after the last level (Langevin's denoising step)
    adaptive: bool = False  # the solver picks its own steps (RK45); ``steps`` is ignored

    def __call__(
        self,
        denoiser: Denoiser,
        sigmas: Tensor,
        x_T: Tensor,
        *inputs: Any,
        generator: Generator = None,
        class_labels: Tensor | None = None,
        record_trajectory: bool = False,
        callback: StepCallback | None = None,
        **options: Any,
    ) -> SampleResult:
        """Run the loop from x_T over the grid ``sigmas``; the contract every sampler shares.

        Args:
            denoiser: D(x; σ, class_labels) ≈ E[x_0 | x] for x = x_t/√ᾱ in VE coordinates
                (``ddpmkit.core.denoisers``); called on the whole batch.
            sigmas: the noise grid σ_0 > σ_1 > … > σ_N = 0, 1-D, descending and ending in 0
                (``ddpmkit.core.grids.build_grid``); N steps, read as float64 Python floats.
            x_T: (B, …) standard normal noise, the VP prior N(0, I); a VE loop starts from
                x = x_T·√(1 + σ_0²).
            *inputs: the loop's further positional inputs (a measurement, a mask, an operator).
            generator: the steps' noise: a ``torch.Generator``, a ``PerSampleGenerator``
                (row i from its own seed) or None (PyTorch's global RNG).
            class_labels: (B,) labels passed to every denoiser call; None: unconditional.
            record_trajectory: keep every state, x_T first, in the result's ``trajectory``.
            callback: called as ``callback(steps done, N, x_t)`` after every step (x_t in VP
                coordinates); None: no reports.
            **options: the loop's keyword options (``options()``: ``eta``, ``variance``, …).

        Returns:
            The samples x_0, the trajectory when recorded, and the denoiser calls made.
        """
        grid = levels(sigmas)
        run = SamplerRun(denoiser, class_labels, len(grid) - 1, record_trajectory, callback)
        run.record(x_T, step_done=False)
        x = x_T * (1 + grid[0] ** 2) ** 0.5 if self.ve else x_T
        with torch.no_grad():
            return run.result(self.loop(run, grid, x, generator, *inputs, **options))

    def options(self) -> tuple[str, ...]:
        """The keyword options the loop accepts (``eta``, ``variance``, ``churn``, …)."""
        params = inspect.signature(self.loop).parameters.values()
        return tuple(p.name for p in params if p.kind == p.KEYWORD_ONLY)

    def nfe(self, steps: int, **options: Any) -> int:
        """Network evaluations for a grid of ``steps`` noise levels with these ``options``."""
        per_level = self.calls_per_level
        if self.calls_per_level_option is not None:  # calls_per_level counts it at 1
            value = options.get(self.calls_per_level_option)
            if value is None:
                value = inspect.signature(self.loop).parameters[self.calls_per_level_option].default
            per_level += int(value) - 1
        return steps * per_level - (per_level - 1) * self.saves_last_call + self.final_calls

    def steps_for_nfe(self, nfe: int, **options: Any) -> int:
        """The most grid levels whose cost stays within ``nfe`` evaluations (at least 1)."""
        steps = 1
        while self.nfe(steps + 1, **options) <= nfe:
            steps += 1
        return steps
