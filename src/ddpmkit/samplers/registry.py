"""The samplers by name, and one call that runs any of them on a schedule's grid."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor

from ddpmkit.core.denoisers import Denoiser
from ddpmkit.core.grids import GridKind, build_grid, timestep_sigmas
from ddpmkit.core.schedules import NoiseSchedule
from ddpmkit.samplers.ancestral import ancestral
from ddpmkit.samplers.common import Sampler, SampleResult
from ddpmkit.samplers.ddim import ddim
from ddpmkit.samplers.dpm_solver import dpmpp_2m, dpmpp_3m
from ddpmkit.samplers.ode import edm_heun, ode_euler, ode_heun, ode_rk45
from ddpmkit.samplers.sde import annealed_langevin, euler_maruyama, predictor_corrector

SAMPLERS: dict[str, Sampler] = {
    "ancestral": ancestral,
    "ddim": ddim,
    "euler-maruyama": euler_maruyama,
    "pc": predictor_corrector,
    "ode-euler": ode_euler,
    "ode-heun": ode_heun,
    "ode-rk45": ode_rk45,
    "dpm++2m": dpmpp_2m,
    "dpm++3m": dpmpp_3m,
    "edm-heun": edm_heun,
    "langevin": annealed_langevin,
}
"""Every sampler of ddpmkit; ``ddpmkit sample --sampler NAME`` chooses among these keys."""


def sample(
    name: str,
    denoiser: Denoiser,
    schedule: NoiseSchedule,
    noise: Tensor,
    steps: int,
    *,
    grid: GridKind | None = None,
    rho: float = 7.0,
    timesteps: Sequence[int] | None = None,
    **run_options: Any,
) -> SampleResult:
    """Run sampler ``name`` from standard normal ``noise`` over ``steps`` levels of ``grid``.

    ``timesteps``, a user list of training steps, replaces the grid (and ``steps``) when given.
    ``run_options`` are what every sampler takes (``generator``, ``class_labels``,
    ``record_trajectory``, ``callback``) and the sampler's own keywords (``eta``, ``variance``,
    ``churn``, ``snr``, …); one it does not take is an error naming the sampler and its options.

    Args:
        name: a key of ``SAMPLERS`` ("ancestral", "ddim", "dpm++2m", …).
        denoiser: D(x; σ) ≈ E[x_0 | x] for x = x_t/√ᾱ in VE coordinates.
        schedule: the noise schedule the grid is built on (``build_grid``).
        noise: (B, …) standard normal x_T, the VP prior N(0, I).
        steps: N, the grid's non-zero levels (an adaptive sampler gets at least 2).
        grid: the grid's kind; None: the sampler's default (``Sampler.default_grid``).
        rho: ρ of the "karras" grid; ignored by the others.
        timesteps: 0-based training steps to visit (any order, no repeats), then σ = 0; they
            replace ``grid`` and ``steps``.
        **run_options: passed to the sampler, as above.

    Returns:
        The samples x_0, the trajectory when recorded, and the denoiser calls made.
    """
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; choose one of {', '.join(SAMPLERS)}")
    sampler = SAMPLERS[name]
    common = {"generator", "class_labels", "record_trajectory", "callback"}
    unknown = set(run_options) - common - set(sampler.options())
    if unknown:
        raise ValueError(
            f"sampler {name!r} takes no option {', '.join(sorted(unknown))}; "
            f"its options: {', '.join(sampler.options()) or 'none'}"
        )
    if timesteps is not None:
        sigmas = timestep_sigmas(schedule, list(timesteps))
    else:  # an adaptive solver needs at least the grid's two ends
        steps = max(steps, 2) if sampler.adaptive else steps
        sigmas = build_grid(schedule, grid or sampler.default_grid, steps, rho)
    return sampler(denoiser, sigmas, noise, **run_options)
