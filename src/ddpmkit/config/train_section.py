"""The ``train`` section of a run's configuration: optimization, checkpoints, logs."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ddpmkit.config.execution import compile_field, precision_field
from ddpmkit.core.precision import Precision
from ddpmkit.learning_rate import LrDecay
from ddpmkit.networks.execution import CompileMode


@dataclass(frozen=True)
class TrainConfig:
    """The ``train`` section: steps or a time budget (``minutes``), batch, optimizer, EMA,
    checkpoints, logs and the precision. Each field's ``help`` is its ``--train.*`` flag's
    help."""

    steps: int = field(
        default=10000,
        metadata={"help": "optimizer steps in total (with train.minutes: the most it may plan)"},
    )
    minutes: float | None = field(
        default=None,
        metadata={
            "help": "a time budget: the first steps measure the step rate, then the step count, "
            "warm-up, EMA half-life (10% of the steps) and checkpoints are planned so that the "
            "run, its final sample grid included, ends in about this many minutes"
        },
    )
    batch_size: int = field(
        default=128,
        metadata={
            "help": "samples per optimizer step, over all processes and micro-batches; 0: chosen "
            "with the model by model.auto_size (from 32 up, doubled while that raises images/s "
            "by 25% and the budget still holds 1,000 steps)"
        },
    )
    grad_accum: int = field(
        default=1,
        metadata={
            "help": "micro-batches per step: each process's rows are fed in this many parts whose "
            "gradients add up (less memory, the same step)"
        },
    )
    lr: float = field(default=2e-4, metadata={"help": "peak learning rate of AdamW"})
    warmup_steps: int = field(
        default=5000, metadata={"help": "linear learning-rate warm-up from 0, in steps"}
    )
    lr_decay: LrDecay = field(
        default="constant",
        metadata={"help": "after the warm-up: constant, or cosine down to 0 at train.steps"},
    )
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW's decoupled weight decay"})
    adam_betas: tuple[float, float] = field(
        default=(0.9, 0.999), metadata={"help": "AdamW's (β1, β2)"}
    )
    grad_clip: float = field(
        default=1.0, metadata={"help": "clip the gradient's global norm to this (0 = off)"}
    )
    ema_decay: float = field(
        default=0.9999, metadata={"help": "EMA decay of the weights used for sampling"}
    )
    ema_warmup: bool = field(
        default=True, metadata={"help": "decay min(ema_decay, (1+n)/(10+n)) for the n-th update"}
    )
    seed: int = field(
        default=0, metadata={"help": "seeds weights, data order, t, noise and dropout"}
    )
    checkpoint_every: int = field(
        default=1000, metadata={"help": "steps between checkpoints (the last step always saves)"}
    )
    sample_every: int = field(
        default=1000, metadata={"help": "steps between sample grids (0 = only at the end)"}
    )
    log_every: int = field(default=50, metadata={"help": "steps between rows of log.csv"})
    keep_checkpoints: int = field(
        default=0, metadata={"help": "keep only the newest K checkpoints (0 = keep all)"}
    )
    skip_nonfinite: bool = field(
        default=False,
        metadata={
            "help": "skip a step whose loss or gradient is NaN/Inf (counted in log.csv) instead "
            "of stopping the run"
        },
    )
    num_workers: int = field(default=0, metadata={"help": "data-loading worker processes"})
    device: str = field(
        default="auto", metadata={"help": "auto (cuda if available), cpu, cuda, cuda:1, …"}
    )
    precision: Precision = precision_field()
    compile: CompileMode = compile_field()
    tensorboard: bool = field(
        default=False,
        metadata={
            "help": "also log to RUN/tensorboard: log rows, images/s and sample grids (needs the "
            "tensorboard package)"
        },
    )
    eval_every: int = field(
        default=0,
        metadata={
            "help": "steps between held-out variational bounds (bits/dim) in log.csv; 0 = never"
        },
    )
    eval_samples: int = field(
        default=32,
        metadata={"help": "held-out items in that bound (each costs T network evaluations)"},
    )

    def __post_init__(self) -> None:
        for name in ("steps", "grad_accum", "log_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"train.{name} must be >= 1, got {getattr(self, name)}")
        for name in (
            "batch_size",
            "warmup_steps",
            "sample_every",
            "num_workers",
            "eval_every",
            "eval_samples",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"train.{name} must be >= 0, got {getattr(self, name)}")
        if self.minutes is not None and not 0 < self.minutes < math.inf:
            raise ValueError(f"train.minutes must be positive and finite, got {self.minutes}")
        if self.batch_size % self.grad_accum:
            raise ValueError(
                f"train.batch_size = {self.batch_size} must be divisible by "
                f"train.grad_accum = {self.grad_accum}"
            )
        if self.keep_checkpoints < 0:
            raise ValueError(
                f"train.keep_checkpoints must be >= 0 (0 keeps all), got {self.keep_checkpoints}"
            )
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"train.ema_decay must lie in [0, 1), got {self.ema_decay}")
        if not 0 < self.lr < math.inf:
            raise ValueError(f"train.lr must be positive and finite, got {self.lr}")
        if not 0 <= self.grad_clip < math.inf:
            raise ValueError(
                f"train.grad_clip must be >= 0 and finite (0 = off), got {self.grad_clip}"
            )
        if not 0 <= self.weight_decay < math.inf:
            raise ValueError(f"train.weight_decay must be >= 0 and finite, got {self.weight_decay}")
