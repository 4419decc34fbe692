"""Planning a run for a time budget (``train.minutes``): the step count, warm-up, EMA horizon and
checkpoint cadence from the step rate measured in the run's own first steps, and the time its
final samples will take."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ddpmkit.config.execution import Execution
from ddpmkit.config.schema import RunConfig, TrainConfig
from ddpmkit.core.denoisers import network_evaluations
from ddpmkit.generation.conditioning import Conditioning
from ddpmkit.generation.sampling import sampler_options, sampling_denoiser
from ddpmkit.networks import UNetConfig
from ddpmkit.networks.execution import synchronize
from ddpmkit.samplers import SAMPLERS
from ddpmkit.storage.model import TrainedModel
from ddpmkit.training.ema import warmup_decay
from ddpmkit.training.sizing import VECTOR_BATCH, Sizing, choose_network

PROBE_STEPS = 10
"""Steps timed before the plan is made (the first one, with its one-off costs, is not timed)."""
WARMUP_SHARE = 0.05
"""The learning-rate warm-up is at most this share of the planned steps."""
CHECKPOINTS = 4
"""Checkpoints in a planned run (the last step always saves)."""
LOG_ROWS = 100
"""A planned run logs at least this many rows (fewer steps: every step), so its plots have
points."""
GRID_SHARE = 0.1
"""The share of a budget that the sample grids before the last one may take."""
DEFAULT_SIZING_MINUTES = 10.0
"""The budget automatic sizing assumes without train.minutes."""


@dataclass(frozen=True)
class Plan:
    """What a time budget became: the planned training options and the figures behind them."""

    train: TrainConfig  # the options the rest of the run uses
    seconds_per_step: float  # measured on the run's own steps
    sample_seconds: float  # reserved for the final sample grid
    ema_half_life: float  # in steps, at the end of the run


def half_life(decay: float) -> float:
    """h with decay^h = 1/2: the steps after which an EMA's weight on a step has halved."""
    return math.log(0.5) / math.log(decay)


def plan_run(
    train: TrainConfig,
    *,
    steps_done: int,
    elapsed: float,
    seconds_per_step: float,
    sample_seconds: float,
) -> Plan:
    """The run that fits ``train.minutes``: after ``steps_done`` steps and ``elapsed`` seconds,
    as many more steps as the rest of the budget holds once the final sample grid is paid for
    (never more than ``train.steps``, never fewer than one more)."""
    if train.minutes is None:
        raise ValueError("plan_run needs train.minutes")
    if not seconds_per_step > 0:
        raise ValueError(f"seconds_per_step must be positive, got {seconds_per_step}")
    budget = train.minutes * 60.0
    grids = _grids_over_the_run(budget, sample_seconds)
    left = budget - elapsed - sample_seconds * (1 + grids)
    steps = steps_done + max(1, int(left / seconds_per_step))
    steps = min(steps, max(train.steps, steps_done + 1))
    planned = dataclasses.replace(
        train,
        steps=steps,
        warmup_steps=min(train.warmup_steps, max(1, int(WARMUP_SHARE * steps))),
        # the warm-up's decay at the last step: with train.ema_warmup (the default) the cap never
        # binds and the half-life grows with the run to ≈ 7.7% of its steps; fixed half-lives of
        # 5, 20 and 35% of the steps sampled worse (docs/benchmarks.md)
        ema_decay=warmup_decay(steps),
        checkpoint_every=max(1, math.ceil(steps / CHECKPOINTS)),
        sample_every=math.ceil(steps / (grids + 1)) if grids else 0,
        log_every=max(1, min(train.log_every, steps // LOG_ROWS)),
    )
    return Plan(planned, seconds_per_step, sample_seconds, half_life(planned.ema_decay))


def _grids_over_the_run(budget: float, sample_seconds: float) -> int:
    """Sample grids drawn before the final one: one per checkpoint, as many as fit in
    `GRID_SHARE` of the budget."""
    if sample_seconds <= 0:
        return CHECKPOINTS - 1
    return max(0, min(CHECKPOINTS - 1, int(GRID_SHARE * budget / sample_seconds)))


def sized_config(
    config: RunConfig,
    shape: tuple[int, ...],
    examples: int,
    world: int,
    device: torch.device,
    agree: Callable[[float], float] = float,
) -> tuple[RunConfig, Sizing | None]:
    """The config with the network chosen for data of per-sample ``shape`` (``examples`` of
    them, shared by ``world`` processes) and the time budget (``model.auto_size``), and the
    sizing behind it (None for vectors, which get the MLP at its defaults)."""
    train = config.train
    if len(shape) != 3:
        model = dataclasses.replace(config.model, kind="mlp", auto_size=False)
        batch = min(VECTOR_BATCH, examples // world) * world
        train = dataclasses.replace(train, batch_size=train.batch_size or batch)
        return dataclasses.replace(config, model=model, train=train), None
    sizing = choose_network(
        shape,
        budget_seconds=60.0 * (train.minutes or DEFAULT_SIZING_MINUTES),
        batch=train.batch_size // world if train.batch_size else None,
        device=device,
        precision=train.precision,
        agree=agree,
        largest=examples // world,
        mlp=not config.model.text_conditional,
    )
    model = dataclasses.replace(config.model, auto_size=False)
    if isinstance(sizing.network, UNetConfig):
        model = dataclasses.replace(model, kind="unet", unet=sizing.network)
    else:
        model = dataclasses.replace(model, kind="mlp", mlp=sizing.network)
    train = dataclasses.replace(train, batch_size=sizing.batch * world)
    return dataclasses.replace(config, model=model, train=train), sizing


def resumed_sizing(config: RunConfig, saved: RunConfig) -> RunConfig:
    """A resumed run keeps the network (and batch, unless one is given) it chose."""
    batch = config.train.batch_size or saved.train.batch_size
    train = dataclasses.replace(config.train, batch_size=batch)
    return dataclasses.replace(config, model=saved.model, train=train)


class Planner:
    """Times the first steps of a ``train.minutes`` run, then plans the rest (``plan_run``).

    ``agree`` turns one process's time into the one all processes use (the slowest);
    ``sampling_seconds`` estimates the final sample grid, asked once, when the plan is made.
    """

    def __init__(self, started: float, agree: Callable[[float], float] = float) -> None:
        self.started, self.agree = started, agree
        self.step_times: list[float] = []

    def time_step(self) -> float:
        """Record that a step has just ended (the time, returned)."""
        now = time.perf_counter()
        self.step_times.append(now)
        return now

    def restart(self) -> None:
        """Forget the steps timed: those that follow run another way (compiled)."""
        self.step_times.clear()

    def plan_after_step(
        self, train: TrainConfig, step: int, sampling_seconds: Callable[[], float]
    ) -> Plan | None:
        """Record that ``step`` has just ended; after PROBE_STEPS timed steps (the first one is
        not timed), the plan; before, None."""
        now = self.time_step()
        if len(self.step_times) <= PROBE_STEPS:
            return None
        per_step = (self.step_times[-1] - self.step_times[0]) / PROBE_STEPS
        return plan_run(
            train,
            steps_done=step,
            elapsed=self.agree(now - self.started),
            seconds_per_step=self.agree(per_step),
            sample_seconds=self.agree(sampling_seconds()),
        )


@torch.no_grad()
def sampling_seconds(model: TrainedModel, execution: Execution) -> float:
    """The time the model's configured samples will take: one timed network call at the sample
    batch size, times the network evaluations of its sampler and guidance (``Sampler.nfe`` and
    ``network_evaluations``) for every batch."""
    sample = model.config.sample
    batch = min(sample.batch_size, sample.num_samples)
    guide = model if sample.autoguidance != 1.0 else None  # the weaker model costs the same
    denoiser = sampling_denoiser(model, sample, Conditioning.of(model), guide)
    steps = sample.steps_for(model.schedule.num_steps)
    calls = SAMPLERS[sample.sampler].nfe(steps, **sampler_options(sample))
    calls *= network_evaluations(denoiser) * math.ceil(sample.num_samples / batch)
    x = torch.zeros(batch, *model.shape, device=execution.device)
    with execution.autocast():
        model.denoiser(x, 1.0)  # warm-up
        synchronize(execution.device)
        start = time.perf_counter()
        model.denoiser(x, 1.0)
        synchronize(execution.device)
    return (time.perf_counter() - start) * calls
