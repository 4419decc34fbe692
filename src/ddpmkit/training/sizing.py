"""Automatic model sizing: the largest network of a ladder that still trains enough steps in the
time budget, judged by timing each rung's training step on the run's own device; and, when
asked, the batch: the smallest whose doubling no longer pays for itself in images per second.
Images climb a ladder of U-Nets; tiny images (at most MLP_MAX_VALUES values) whose budget is
too short for every U-Net rung climb a ladder of residual MLPs on the flattened image."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Literal

import torch
from torch import nn

from ddpmkit.core.precision import Precision, autocast
from ddpmkit.networks import MLPConfig, MLPDenoiser, UNet, UNetConfig

NetworkConfig = UNetConfig | MLPConfig
"""What a rung is: a U-Net or an MLP."""

LADDER: tuple[tuple[str, int, int, int], ...] = (
    # name, base channels, resnets per level, levels with self-attention (the coarsest ones)
    ("tiny", 16, 1, 0),
    ("small", 32, 1, 0),
    ("medium", 64, 1, 1),
    ("large", 96, 2, 1),
    ("xl", 128, 2, 2),
)
"""The U-Net rungs, smallest first (docs/benchmarks.md has their step times on the project's CPUs)."""

MLP_LADDER: tuple[tuple[str, int, int], ...] = (
    # name, hidden width, residual blocks
    ("mlp-small", 256, 2),
    ("mlp-medium", 512, 2),
)
"""The MLP rungs, smallest first."""

MLP_MAX_VALUES = 64
"""Images of at most this many values (8×8 grey) whose budget is too short for every U-Net rung
climb the MLP ladder instead. Measured on this project's Zen 3 CPU (docs/benchmarks.md, "The
bundled 8×8 digits in one minute"): in `ddpmkit train --train.minutes 1` with a 400-sample grid
the MLP met the demo's criteria twice where the tiny U-Net missed them twice (its grid alone
takes ~25 s); with time for 2,400 U-Net steps (4 minutes) the small U-Net won, and at 16×16 (256
values, 2 minutes) the tiny U-Net won by far."""

MIN_STEPS = 2000
"""A rung is chosen only if the budget holds this many of its steps: at 28×28 in 4 CPU-minutes
tiny's ~2,700 steps beat small's ~1,200 twice (docs/benchmarks.md, "Quality per CPU-minute")."""

TIMED_STEPS = 2
"""Steps timed per rung, after one untimed step."""

FIRST_BATCH = 32
"""The smallest batch an automatic choice considers for a U-Net (per process)."""
MLP_FIRST_BATCH = 128
"""The same for an MLP: on 8×8 digits in one minute the MLP at batch 64 missed the demo's FID
criterion (ratio 4.6) that it met at 128 (2.8, 2.4) and 256 (2.0)."""
MAX_BATCH = 512
"""The largest batch an automatic choice considers (per process)."""
VECTOR_BATCH = 128
"""An automatic batch for data that are not images (vectors, which get the MLP, not sized)."""
BATCH_GAIN = 1.25
"""A doubled batch is taken only if it raises images per second by at least this factor: at
equal images a smaller batch's extra steps learned more (docs/benchmarks.md, 28×28 digits)."""


@dataclass(frozen=True)
class Sizing:
    """The chosen network and what it was chosen on."""

    name: str
    network: NetworkConfig  # a UNetConfig or an MLPConfig
    parameters: int
    seconds_per_step: float  # measured: one training step at ``batch``
    budget_seconds: float
    batch: int  # per process: the run's, or the one chosen with the rung

    @property
    def kind(self) -> Literal["unet", "mlp"]:
        """The model.kind of the chosen network."""
        return "unet" if isinstance(self.network, UNetConfig) else "mlp"

    @property
    def expected_steps(self) -> int:
        return int(self.budget_seconds / self.seconds_per_step)


PATCHED_FROM = 16
"""Images at least this wide (and of even sides) are cut into 2×2 patches before the first
convolution (``UNetConfig.patch_size``): a rung's step is 2.4–4× cheaper, and on 28×28 digits the
patched rungs took more steps and sampled faster in the same time, their samples as good or better
within the run-to-run spread (docs/benchmarks.md)."""


def patch_for(shape: tuple[int, ...]) -> int:
    """2 for images (C, H, W) with even sides of at least PATCHED_FROM, else 1."""
    sides = shape[1:]
    return 2 if min(sides) >= PATCHED_FROM and all(n % 2 == 0 for n in sides) else 1


def levels_for(size: int) -> int:
    """Resolution levels down to about 4×4 (at least 1), each halving an even size."""
    levels = 1
    while size % 2 == 0 and size // 2 >= 4 and levels < 4:
        size, levels = size // 2, levels + 1
    return levels


def rung(shape: tuple[int, ...], base: int, layers: int, attended: int) -> UNetConfig:
    """One rung's U-Net for images of ``shape`` (C, H, W): patches (``patch_for``), then
    channels ×(1, 2, 2, …) per level."""
    patch = patch_for(shape)
    levels = levels_for(min(shape[1:]) // patch)
    resolutions = [shape[1] // patch // 2**i for i in range(levels)]
    return UNetConfig(
        in_channels=shape[0],
        sample_size=shape[1],
        patch_size=patch,
        base_channels=base,
        channel_mults=(1, *([2] * (levels - 1))),
        layers_per_block=layers,
        attention_resolutions=tuple(resolutions[levels - attended :]) if attended else (),
        dropout=0.0,
        norm_groups=min(16, base),
        attention_head_dim=min(32, base) if attended else None,
    )


def mlp_rung(shape: tuple[int, ...], hidden: int, blocks: int) -> MLPConfig:
    """One rung's MLP for data of ``shape``, flattened."""
    return MLPConfig(dim=math.prod(shape), hidden=hidden, num_blocks=blocks)


def unet_ladder(shape: tuple[int, ...]) -> list[tuple[str, NetworkConfig]]:
    """The U-Net rungs for images of ``shape`` (C, H, W), smallest first."""
    return [(name, rung(shape, *sizes)) for name, *sizes in LADDER]


def mlp_ladder(shape: tuple[int, ...]) -> list[tuple[str, NetworkConfig]]:
    """The MLP rungs for data of ``shape``, smallest first."""
    return [(name, mlp_rung(shape, hidden, blocks)) for name, hidden, blocks in MLP_LADDER]


def network_of(config: NetworkConfig) -> nn.Module:
    """The network a rung describes."""
    return UNet(config) if isinstance(config, UNetConfig) else MLPDenoiser(config)


def seconds_per_step(
    config: NetworkConfig, batch: int, device: torch.device, precision: Precision
) -> float:
    """The time of one AdamW training step of the network on random data (after one untimed)."""
    generator = torch.Generator().manual_seed(0)
    network = network_of(config).to(device)
    optimizer = torch.optim.AdamW(network.parameters(), lr=1e-4)
    shape: tuple[int, ...]
    if isinstance(config, UNetConfig):
        shape = (batch, config.in_channels, config.sample_size, config.sample_size)
    else:
        shape = (batch, config.dim)  # an MLP flattens images: the same step
    x = torch.randn(shape, generator=generator).to(device)
    t = torch.randint(0, 1000, (batch,), generator=generator).to(device)
    times = []
    for _ in range(TIMED_STEPS + 1):
        with autocast(precision, device):
            loss = network(x, t).float().square().mean()
        optimizer.zero_grad(set_to_none=True)
        torch.autograd.backward(loss)
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter())
    return (times[-1] - times[0]) / TIMED_STEPS


def batch_for(
    config: NetworkConfig,
    budget_seconds: float,
    device: torch.device,
    precision: Precision,
    agree: Callable[[float], float] = float,
    largest: int = MAX_BATCH,
) -> tuple[int, float]:
    """The batch from FIRST_BATCH (MLP_FIRST_BATCH for an MLP) up, doubled while that raises
    images/s by BATCH_GAIN or more and the budget still holds MIN_STEPS steps (up to
    ``largest``), and its step time: a CPU
    whose images/s do not grow with the batch keeps the small one and its many steps, a GPU or
    a tiny image fills the hardware first."""
    batch = min(FIRST_BATCH if isinstance(config, UNetConfig) else MLP_FIRST_BATCH, largest)
    per_step = agree(seconds_per_step(config, batch, device, precision))
    while 2 * batch <= min(MAX_BATCH, largest):
        doubled = agree(seconds_per_step(config, 2 * batch, device, precision))
        gain = 2 * batch / doubled / (batch / per_step)
        if gain < BATCH_GAIN or budget_seconds / doubled < MIN_STEPS:
            break
        batch, per_step = 2 * batch, doubled
    return batch, per_step


def choose_network(
    shape: tuple[int, ...],
    budget_seconds: float,
    batch: int | None,
    device: torch.device,
    precision: Precision,
    agree: Callable[[float], float] = float,
    largest: int = MAX_BATCH,
    mlp: bool = True,
) -> Sizing:
    """The largest U-Net rung that fits MIN_STEPS steps into the budget; when none does and the
    image has at most MLP_MAX_VALUES values, the largest MLP rung that does (the smallest if none
    does). ``batch`` is per process; None chooses one per rung (``batch_for``, at most
    ``largest``). ``agree`` turns one process's step time into the one all processes use (the
    slowest). ``mlp`` False never takes an MLP (text conditioning needs the U-Net's
    cross-attention)."""
    if len(shape) != 3:
        raise ValueError(f"automatic sizing is for images (C, H, W); the data are {shape}")
    climb = partial(
        climb_ladder, budget_seconds=budget_seconds, batch=batch, device=device,
        precision=precision, agree=agree, largest=largest,
    )  # fmt: skip
    unet = climb(unet_ladder(shape))
    if unet.expected_steps >= MIN_STEPS or not mlp or math.prod(shape) > MLP_MAX_VALUES:
        return unet
    return climb(mlp_ladder(shape))


def climb_ladder(
    rungs: list[tuple[str, NetworkConfig]],
    *,
    budget_seconds: float,
    batch: int | None,
    device: torch.device,
    precision: Precision,
    agree: Callable[[float], float],
    largest: int,
) -> Sizing:
    """The largest of ``rungs`` that fits MIN_STEPS steps into the budget (the smallest if none
    does); rungs are timed smallest first and the timing stops at the first that does not fit."""
    chosen: Sizing | None = None
    for name, config in rungs:
        if batch is None:
            size, per_step = batch_for(config, budget_seconds, device, precision, agree, largest)
        else:
            size, per_step = batch, agree(seconds_per_step(config, batch, device, precision))
        parameters = sum(p.numel() for p in network_of(config).parameters())
        candidate = Sizing(name, config, parameters, per_step, budget_seconds, size)
        if chosen is not None and candidate.expected_steps < MIN_STEPS:
            break
        chosen = candidate
        if candidate.expected_steps < MIN_STEPS:
            break
    assert chosen is not None
    return chosen
