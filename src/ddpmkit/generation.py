"""Drawing samples from a trained network in batches, each sample from its own seed."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext

import torch
from torch import Tensor, nn

from ddpmkit.config import DiffusionConfig, SampleConfig
from ddpmkit.denoisers import NetworkDenoiser
from ddpmkit.randomness import PerSampleGenerator, randn
from ddpmkit.samplers import SampleResult, ddpm_ancestral
from ddpmkit.schedules import NoiseSchedule

ProgressCallback = Callable[[int, int], None]
"""Called with (network evaluations done, total) as sampling advances."""


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
    denoiser = NetworkDenoiser(network, schedule, diffusion.parameterization)
    clip = (-1.0, 1.0) if config.clip_x0 else None
    starts = range(0, config.num_samples, config.batch_size)
    total_nfe = schedule.num_steps * len(starts)
    autocast = torch.autocast(device.type, torch.bfloat16) if bf16 else nullcontext()
    results = []
    for batch_index, start in enumerate(starts):
        stop = min(start + config.batch_size, config.num_samples)
        generator = PerSampleGenerator(range(config.seed + start, config.seed + stop), device)
        labels = None if class_labels is None else class_labels[start:stop].to(device)
        done = batch_index * schedule.num_steps
        callback = None
        if progress is not None:
            callback = lambda i, _total, _x, done=done: progress(done + i, total_nfe)  # noqa: E731
        x_T = randn((stop - start, *shape), generator, torch.float32, device)
        with autocast:
            result = ddpm_ancestral(
                denoiser, schedule, x_T, variance=config.variance, clip=clip, generator=generator,
                class_labels=labels, record_trajectory=record_trajectory, callback=callback,
            )  # fmt: skip
        results.append(result)
    return _concatenate(results)


def _concatenate(results: list[SampleResult]) -> SampleResult:
    samples = torch.cat([r.samples.float().cpu() for r in results])
    trajectory = None
    if results[0].trajectory is not None:
        steps = zip(*(r.trajectory or [] for r in results), strict=True)
        trajectory = [torch.cat(states) for states in steps]
    return SampleResult(samples, trajectory, sum(r.nfe for r in results))
