"""What every sampler shares: the grid's levels, the prior, NFE counting, trajectory and progress.

Samplers walk a grid of noise levels σ_0 > … > σ_N = 0 (``ddpmkit.core.grids``) starting from standard
normal noise x_T (the VP prior N(0, I)); VE-coordinate samplers scale it to x = x_T·√(1 + σ_0²).
They return x_0, and record the trajectory in VP coordinates x_t = x/√(1 + σ²) when asked.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor

from ddpmkit.core.denoisers import Denoiser, predict_with_variance

StepCallback = Callable[[int, int, Tensor], None]
"""Called with (steps done, steps in total, current x) after every step of a sampler."""


@dataclass
class SampleResult:
    """Final samples, the trajectory x_T … x_0 when it was recorded, and the network evaluations."""

    samples: Tensor
    trajectory: list[Tensor] | None
    nfe: int


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

    def record_ve(self, x: Tensor, sigma: float, step_done: bool = True) -> None:
        """``record`` for x in VE coordinates at level σ."""
        self.record(x / (1.0 + sigma**2) ** 0.5, step_done)

    def result(self, x0: Tensor) -> SampleResult:
        return SampleResult(x0, self.trajectory, self.nfe)

    @classmethod
    def start(
        cls,
        denoiser: Denoiser,
        sigmas: Tensor,
        x_T: Tensor,
        class_labels: Tensor | None,
        record_trajectory: bool,
        callback: StepCallback | None,
        *,
        ve: bool,
    ) -> tuple[list[float], SamplerRun, Tensor]:
        """The grid, a run over its steps, and the start x: x_T, or x_T·√(1 + σ_0²) in VE units."""
        grid = levels(sigmas)
        run = cls(denoiser, class_labels, len(grid) - 1, record_trajectory, callback)
        run.record(x_T, step_done=False)
        return grid, run, x_T * (1 + grid[0] ** 2) ** 0.5 if ve else x_T
