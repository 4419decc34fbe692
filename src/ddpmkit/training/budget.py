"""Planning a run for a time budget (``train.minutes``): the step count, warm-up, EMA horizon and
checkpoint cadence from the step rate measured in the run's own first steps."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from ddpmkit.config.schema import TrainConfig
from ddpmkit.training.ema import warmup_decay

PROBE_STEPS = 10
"""Steps timed before the plan is made (the first one, with its one-off costs, is not timed)."""
WARMUP_SHARE = 0.05
"""The learning-rate warm-up is at most this share of the planned steps."""
CHECKPOINTS = 4
"""Checkpoints in a planned run (the last step always saves)."""


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
    left = train.minutes * 60.0 - elapsed - sample_seconds
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
        sample_every=0,
    )
    return Plan(planned, seconds_per_step, sample_seconds, half_life(planned.ema_decay))
