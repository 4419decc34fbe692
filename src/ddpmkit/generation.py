"""Drawing samples from a trained network in batches, each sample from its own seed."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext

import torch
from torch import Tensor, nn

from ddpmkit.builders import build_denoiser
from ddpmkit.config import DiffusionConfig, SampleConfig
from ddpmkit.denoisers import Denoiser
from ddpmkit.randomness import PerSampleGenerator, randn
from ddpmkit.samplers import SAMPLERS, SampleResult, sample
from ddpmkit.schedules import NoiseSchedule
from ddpmkit.thresholding import ClippedDenoiser, DynamicThresholding

ProgressCallback = Callable[[int, int], None]
"""Called with (sampling steps done, total) as sampling advances."""


def generate(
    network: nn.Module,
    schedule: NoiseSchedule,
    diffusion: DiffusionConfig,
    config: SampleConfig,
    shape: tuple[int, ...],
    *,
    class_labels: Tensor | None = None,
    record_trajectory: bool = False,
    bf16: bool = False,
    progress: ProgressCallback | None = None,
) -> SampleResult:
    """``config.num_samples`` samples of per-sample ``shape``; sample i is seeded ``config.seed + i``.

    Batches of ``config.batch_size`` are drawn one after another; since every sample's noise comes
    from its own generator, the result does not depend on the batch size.
    """
    device = next(network.parameters()).device
    denoiser = wrap_denoiser(build_denoiser(network, schedule, diffusion), config)
    steps = config.steps_for(schedule.num_steps)
    starts = range(0, config.num_samples, config.batch_size)
    autocast = torch.autocast(device.type, torch.bfloat16) if bf16 else nullcontext()
    options = sampler_options(config)  # resolved once, not per batch
    results = []
    for batch_index, start in enumerate(starts):
        stop = min(start + config.batch_size, config.num_samples)
        generator = PerSampleGenerator(range(config.seed + start, config.seed + stop), device)
        labels = None if class_labels is None else class_labels[start:stop].to(device)
        callback = None
        if progress is not None:
            done, total = batch_index * steps, steps * len(starts)
            callback = lambda i, _n, _x, done=done, total=total: progress(done + i, total)  # noqa: E731
        x_T = randn((stop - start, *shape), generator, torch.float32, device)
        with autocast:
            result = sample(
                config.sampler, denoiser, schedule, x_T, steps, grid=config.grid, rho=config.rho,
                timesteps=config.timesteps,
                generator=generator, class_labels=labels, record_trajectory=record_trajectory,
                callback=callback, **options,
            )  # fmt: skip
        results.append(result)
    return _concatenate(results)


def wrap_denoiser(denoiser: Denoiser, config: SampleConfig) -> Denoiser:
    """The denoiser with the configured clipping or dynamic thresholding of x̂_0."""
    if config.dynamic_threshold is not None:
        return DynamicThresholding(denoiser, config.dynamic_threshold)
    return ClippedDenoiser(denoiser) if config.clip_x0 else denoiser


def sampler_options(config: SampleConfig) -> dict[str, object]:
    """The config fields that the chosen sampler takes as keyword options."""
    return {name: getattr(config, name) for name in SAMPLERS[config.sampler].options()}


def _concatenate(results: list[SampleResult]) -> SampleResult:
    samples = torch.cat([r.samples.float().cpu() for r in results])
    trajectory = None
    if results[0].trajectory is not None:
        steps = zip(*(r.trajectory or [] for r in results), strict=True)
        trajectory = [torch.cat(states) for states in steps]
    return SampleResult(samples, trajectory, sum(r.nfe for r in results))
