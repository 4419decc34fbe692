"""SDEdit: image-to-image by noising the input to t_0 and denoising it (Meng et al. 2022, §3)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ddpmkit.core.denoisers import Denoiser
from ddpmkit.core.forward import q_sample
from ddpmkit.core.grids import respaced_timesteps
from ddpmkit.core.randomness import Generator, randn_like
from ddpmkit.core.schedules import NoiseSchedule
from ddpmkit.samplers.common import SampleResult
from ddpmkit.samplers.registry import sample


def sdedit(
    denoiser: Denoiser,
    schedule: NoiseSchedule,
    image: Tensor,
    strength: float,
    *,
    sampler: str = "ancestral",
    steps: int,
    generator: Generator = None,
    **options: Any,
) -> SampleResult:
    """x_{t_0} = √ᾱ_{t_0} x + √(1-ᾱ_{t_0}) ε with t_0 = strength·T, then ``sampler`` down to 0.

    The sampler walks ``steps`` training steps (at most t_0) evenly spaced from t_0 down to the
    first, both included; ``options`` go to it (``registry.sample``). Strength 0 returns a copy of
    the input (no step, no trajectory); strength 1 noises to ᾱ_T ≈ 0, i.e. samples
    unconditionally.

    Args:
        denoiser: D(x; σ) ≈ E[x_0 | x] for x = x_t/√ᾱ in VE coordinates.
        schedule: the noise schedule of the denoiser's training (T = ``num_steps``).
        image: (B, …) the guide x in data units ([-1, 1] for images).
        strength: t_0/T in [0, 1], rounded to a whole step.
        sampler: a key of ``SAMPLERS`` ("ancestral" by default).
        steps: the sampler's steps; at most t_0 are taken.
        generator: the noise of x_{t_0}, then the sampler's: a ``torch.Generator``, a
            ``PerSampleGenerator`` (row i from its own seed) or None (PyTorch's global RNG).
        **options: the sampler's other arguments (``class_labels``, ``record_trajectory``,
            ``callback``, ``eta``, …).

    Returns:
        The edited samples x_0, the trajectory when recorded (from x_{t_0}), and the
            denoiser calls made.
    """
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"SDEdit's strength must lie in [0, 1], got {strength}")
    start = round(strength * schedule.num_steps)  # t_0 as a count of the chain's steps
    if start == 0:
        return SampleResult(image.clone(), None, 0)
    t_0 = torch.full((image.shape[0],), start - 1, dtype=torch.long)  # its 0-based table row
    x_t0 = q_sample(schedule, image, t_0, randn_like(image, generator))
    timesteps = respaced_timesteps(start, min(steps, start))
    return sample(
        sampler, denoiser, schedule, x_t0, len(timesteps), timesteps=timesteps,
        generator=generator, **options,
    )  # fmt: skip
