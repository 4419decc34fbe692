"""Automatic model sizing: the largest U-Net of a ladder that still trains enough steps in the
time budget, judged by timing each rung's training step on the run's own device."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ddpmkit.core.precision import Precision, autocast
from ddpmkit.networks import UNet, UNetConfig

LADDER: tuple[tuple[str, int, int, int], ...] = (
    # name, base channels, resnets per level, levels with self-attention (the coarsest ones)
    ("tiny", 16, 1, 0),
    ("small", 32, 1, 0),
    ("medium", 64, 1, 1),
    ("large", 96, 2, 1),
    ("xl", 128, 2, 2),
)
"""The rungs, smallest first (docs/benchmarks.md has their step times on the project's CPUs)."""

MIN_STEPS = 1000
"""A rung is chosen only if the budget holds this many of its steps (docs/benchmarks.md)."""

TIMED_STEPS = 2
"""Steps timed per rung, after one untimed step."""


@dataclass(frozen=True)
class Sizing:
    """The chosen U-Net and what it was chosen on."""

    name: str
    unet: UNetConfig
    parameters: int
    seconds_per_step: float  # measured: one training step at the run's batch size
    budget_seconds: float

    @property
    def expected_steps(self) -> int:
        return int(self.budget_seconds / self.seconds_per_step)


def levels_for(size: int) -> int:
    """Resolution levels down to about 4×4 (at least 1), each halving an even size."""
    levels = 1
    while size % 2 == 0 and size // 2 >= 4 and levels < 4:
        size, levels = size // 2, levels + 1
    return levels


def rung(shape: tuple[int, ...], base: int, layers: int, attended: int) -> UNetConfig:
    """One rung's U-Net for images of ``shape`` (C, H, W): channels ×(1, 2, 2, …) per level."""
    levels = levels_for(min(shape[1:]))
    resolutions = [shape[1] // 2**i for i in range(levels)]
    return UNetConfig(
        in_channels=shape[0],
        sample_size=shape[1],
        base_channels=base,
        channel_mults=(1, *([2] * (levels - 1))),
        layers_per_block=layers,
        attention_resolutions=tuple(resolutions[levels - attended :]) if attended else (),
        dropout=0.0,
        norm_groups=min(16, base),
        attention_head_dim=min(32, base) if attended else None,
    )


def seconds_per_step(
    config: UNetConfig, batch: int, device: torch.device, precision: Precision
) -> float:
    """The time of one AdamW training step of the network on random data (after one untimed)."""
    generator = torch.Generator().manual_seed(0)
    network = UNet(config).to(device)
    optimizer = torch.optim.AdamW(network.parameters(), lr=1e-4)
    shape = (batch, config.in_channels, config.sample_size, config.sample_size)
    x = torch.randn(shape, generator=generator).to(device)
    t = torch.randint(0, 1000, (batch,), generator=generator).to(device)
    times = []
    for _ in range(TIMED_STEPS + 1):
        with autocast(precision, device):
            loss = network(x, t).float().square().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter())
    return (times[-1] - times[0]) / TIMED_STEPS


def choose_unet(
    shape: tuple[int, ...],
    budget_seconds: float,
    batch: int,
    device: torch.device,
    precision: Precision,
    agree: Callable[[float], float] = float,
) -> Sizing:
    """The largest rung that fits MIN_STEPS steps into the budget (the smallest if none does);
    rungs are timed smallest first and the timing stops at the first that does not fit.
    ``agree`` turns one process's step time into the one all processes use (the slowest)."""
    if len(shape) != 3:
        raise ValueError(f"automatic sizing is for images (C, H, W); the data are {shape}")
    chosen: Sizing | None = None
    for name, base, layers, attended in LADDER:
        config = rung(shape, base, layers, attended)
        per_step = agree(seconds_per_step(config, batch, device, precision))
        parameters = sum(p.numel() for p in UNet(config).parameters())
        candidate = Sizing(name, config, parameters, per_step, budget_seconds)
        if chosen is not None and candidate.expected_steps < MIN_STEPS:
            break
        chosen = candidate
        if candidate.expected_steps < MIN_STEPS:
            break
    assert chosen is not None
    return chosen
