"""The samplers by name, their default grids and NFE, and one call that runs any of them."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from ddpmkit.core.denoisers import Denoiser
from ddpmkit.core.grids import GridKind, build_grid, timestep_sigmas
from ddpmkit.core.randomness import Generator
from ddpmkit.samplers.ancestral import ancestral
from ddpmkit.samplers.common import SampleResult, StepCallback
from ddpmkit.samplers.ddim import ddim
from ddpmkit.samplers.dpm_solver import dpmpp_2m, dpmpp_3m
from ddpmkit.samplers.ode import edm_heun, ode_euler, ode_rk45
from ddpmkit.samplers.sde import annealed_langevin, euler_maruyama, predictor_corrector

SamplerFunction = Callable[..., SampleResult]


@dataclass(frozen=True)
class SamplerSpec:
    """A sampler, the grid it walks by default, and how many denoiser calls a grid level costs."""

    function: SamplerFunction
    default_grid: GridKind
    calls_per_level: int = 1  # Heun and predictor–corrector evaluate twice per level
    saves_last_call: bool = False  # the step to σ = 0 costs one call, not calls_per_level
    adaptive: bool = False  # the solver picks its own steps (RK45); ``steps`` is ignored

    def nfe(self, steps: int, langevin_steps: int | None = None) -> int:
        """Network evaluations for a grid of ``steps`` noise levels (Langevin: per-level steps)."""
        if self.function is annealed_langevin:
            per_level = (
                langevin_steps
                or inspect.signature(annealed_langevin).parameters["langevin_steps"].default
            )
            return steps * per_level + 1
        return steps * self.calls_per_level - (self.calls_per_level - 1) * self.saves_last_call

    def steps_for_nfe(self, nfe: int, langevin_steps: int | None = None) -> int:
        """The most grid levels whose cost stays within ``nfe`` evaluations (at least 1)."""
        steps = 1
        while self.nfe(steps + 1, langevin_steps) <= nfe:
            steps += 1
        return steps

    def options(self) -> tuple[str, ...]:
        """The keyword options the sampler function accepts beyond the common ones."""
        common = {"generator", "class_labels", "record_trajectory", "callback"}
        params = inspect.signature(self.function).parameters.values()
        return tuple(p.name for p in params if p.kind == p.KEYWORD_ONLY and p.name not in common)


SAMPLERS: dict[str, SamplerSpec] = {
    "ancestral": SamplerSpec(ancestral, "linspace"),
    "ddim": SamplerSpec(ddim, "linspace"),
    "euler-maruyama": SamplerSpec(euler_maruyama, "linspace"),
    "pc": SamplerSpec(predictor_corrector, "linspace", calls_per_level=2, saves_last_call=True),
    "ode-euler": SamplerSpec(ode_euler, "log_snr"),
    "ode-heun": SamplerSpec(edm_heun, "log_snr", calls_per_level=2, saves_last_call=True),
    "ode-rk45": SamplerSpec(ode_rk45, "log_snr", adaptive=True),
    "dpm++2m": SamplerSpec(dpmpp_2m, "log_snr"),
    "dpm++3m": SamplerSpec(dpmpp_3m, "log_snr"),
    "edm-heun": SamplerSpec(edm_heun, "karras", calls_per_level=2, saves_last_call=True),
    "langevin": SamplerSpec(annealed_langevin, "log_snr"),
}
"""Every sampler of ddpmkit; ``ddpmkit sample --sampler NAME`` chooses among these keys."""


def sample(
    name: str,
    denoiser: Denoiser,
    schedule: Any,
    noise: Tensor,
    steps: int,
    *,
    grid: GridKind | None = None,
    rho: float = 7.0,
    timesteps: Sequence[int] | None = None,
    generator: Generator = None,
    class_labels: Tensor | None = None,
    record_trajectory: bool = False,
    callback: StepCallback | None = None,
    **options: Any,
) -> SampleResult:
    """Run sampler ``name`` from standard normal ``noise`` over ``steps`` levels of ``grid``.

    ``timesteps``, a user list of training steps, replaces the grid (and ``steps``) when given.

    ``options`` are the sampler's own keywords (``eta``, ``variance``, ``churn``, ``snr``, …);
    one it does not take is an error naming the sampler and what it accepts.
    """
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; choose one of {', '.join(SAMPLERS)}")
    spec = SAMPLERS[name]
    unknown = set(options) - set(spec.options())
    if unknown:
        raise ValueError(
            f"sampler {name!r} takes no option {', '.join(sorted(unknown))}; "
            f"its options: {', '.join(spec.options()) or 'none'}"
        )
    if timesteps is not None:
        sigmas = timestep_sigmas(schedule, list(timesteps))
    else:  # an adaptive solver needs at least the grid's two ends
        steps = max(steps, 2) if spec.adaptive else steps
        sigmas = build_grid(schedule, grid or spec.default_grid, steps, rho)
    return spec.function(
        denoiser, sigmas, noise, generator=generator, class_labels=class_labels,
        record_trajectory=record_trajectory, callback=callback, **options,
    )  # fmt: skip
