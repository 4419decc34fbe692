"""The ``sample`` section of a run's configuration: how samples are drawn."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ddpmkit.config.execution import compile_field, precision_field
from ddpmkit.core.grids import GridKind
from ddpmkit.core.precision import Precision
from ddpmkit.networks.execution import CompileMode
from ddpmkit.samplers import SAMPLERS, ReverseVariance

MAX_SAMPLE_STEPS = 100_000
"""The most grid levels a sampler may be asked for (T = 1000 needs at most 1000)."""


@dataclass(frozen=True)
class SampleConfig:
    """The ``sample`` section: the sampler and its options, conditioning and guidance, clipping,
    how many samples in which batches from which seed, and the precision. ``Model.sample`` takes
    every field as a keyword; each field's ``help`` is its ``--sample.*`` flag's help."""

    sampler: str = field(
        default="ancestral",
        metadata={
            "help": "the sampling algorithm (ddpmkit.samplers.SAMPLERS)",
            "choices": tuple(SAMPLERS),
        },
    )
    steps: int | None = field(
        default=None,
        metadata={"help": "noise levels to visit; none: all T for ancestral, 50 otherwise"},
    )
    grid: GridKind | None = field(
        default=None, metadata={"help": "spacing of the noise levels; none: the sampler's own"}
    )
    rho: float = field(default=7.0, metadata={"help": "ρ of the karras grid"})
    timesteps: tuple[int, ...] | None = field(
        default=None, metadata={"help": "a user list of training steps (replaces grid and steps)"}
    )
    variance: ReverseVariance = field(
        default="auto",
        metadata={
            "help": "ancestral σ²_t: beta_tilde, beta, learned Σ_θ; auto: learned if there, else β̃"
        },
    )
    eta: float = field(default=0.0, metadata={"help": "ddim: 0 deterministic, 1 ancestral"})
    churn: float = field(default=0.0, metadata={"help": "edm-heun: S_churn (0 = deterministic)"})
    churn_min: float = field(
        default=0.0, metadata={"help": "edm-heun: S_tmin, the lowest σ that gets churn"}
    )
    churn_max: float = field(
        default=1e9, metadata={"help": "edm-heun: S_tmax, the highest σ that gets churn"}
    )
    churn_noise: float = field(default=1.0, metadata={"help": "edm-heun: S_noise"})
    snr: float = field(
        default=0.16, metadata={"help": "pc: the Langevin corrector's signal-to-noise ratio r"}
    )
    corrector_steps: int = field(
        default=1, metadata={"help": "pc: corrector steps per noise level"}
    )
    langevin_steps: int = field(default=5, metadata={"help": "langevin: steps per noise level"})
    langevin_step_size: float = field(
        default=0.2, metadata={"help": "langevin: c; the step at level i is c·σ_i²"}
    )
    rtol: float = field(default=1e-4, metadata={"help": "ode-rk45: relative tolerance"})
    atol: float = field(default=1e-4, metadata={"help": "ode-rk45: absolute tolerance"})
    label: int | None = field(
        default=None, metadata={"help": "class of every sample; none: sample i gets class i mod K"}
    )
    prompt: str | None = field(
        default=None,
        metadata={
            "help": "text-conditional models: the prompt of every sample; none: sample i gets "
            "class i mod K's first caption"
        },
    )
    guidance: float = field(
        default=1.0,
        metadata={
            "help": "classifier-free guidance scale w (1 = plain conditional, 0 = unconditional)"
        },
    )
    classifier: str | None = field(
        default=None,
        metadata={"help": "a classifier folder (ddpmkit train-classifier) to guide with"},
    )
    classifier_scale: float = field(
        default=1.0, metadata={"help": "classifier guidance scale s on ∇log p_φ(y|x_t)"}
    )
    autoguidance: float = field(
        default=1.0,
        metadata={
            "help": "autoguidance weight w (Karras et al. 2024): D_guide + w·(D - D_guide), "
            "steering away from a weaker model, sample.guide (1 = off)"
        },
    )
    guide: str | None = field(
        default=None,
        metadata={
            "help": "autoguidance's weaker model: a checkpoint folder; none: the run's checkpoint "
            "nearest half the sampled one's steps"
        },
    )
    clip_x0: bool = field(
        default=True, metadata={"help": "clip the predicted x_0 to [-1, 1] (image data)"}
    )
    dynamic_threshold: float | None = field(
        default=None,
        metadata={"help": "Imagen's dynamic thresholding percentile, e.g. 0.995; none: off"},
    )
    num_samples: int = field(default=64, metadata={"help": "samples to draw"})
    batch_size: int = field(default=256, metadata={"help": "samples per network call"})
    seed: int = field(
        default=0, metadata={"help": "sample i uses seed + i, whatever the batch size"}
    )
    use_ema: bool = field(default=True, metadata={"help": "sample with the EMA weights"})
    precision: Precision = precision_field()
    compile: CompileMode = compile_field()

    def __post_init__(self) -> None:
        if self.num_samples < 1 or self.batch_size < 1:
            raise ValueError("sample.num_samples and sample.batch_size must be >= 1")
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"sample.steps must be >= 1, got {self.steps}")
        if self.steps is not None and self.steps > MAX_SAMPLE_STEPS:
            raise ValueError(
                f"sample.steps = {self.steps} is more than {MAX_SAMPLE_STEPS:,}: no sampler needs "
                "that many levels, and their grid alone would not fit in memory"
            )
        if not 0.0 <= self.eta <= 1.0:
            raise ValueError(f"sample.eta must lie in [0, 1], got {self.eta}")
        positive = ("rho", "snr", "langevin_step_size", "rtol", "atol")
        non_negative = ("churn", "churn_min", "churn_max", "churn_noise")
        for name in positive:
            if not 0 < getattr(self, name) < math.inf:
                raise ValueError(
                    f"sample.{name} must be positive and finite, got {getattr(self, name)}"
                )
        for name in non_negative:
            if not 0 <= getattr(self, name) < math.inf:
                raise ValueError(
                    f"sample.{name} must be >= 0 and finite, got {getattr(self, name)}"
                )
        if self.churn_min > self.churn_max:
            raise ValueError(
                f"sample.churn_min ({self.churn_min}) must not exceed churn_max ({self.churn_max})"
            )
        if self.langevin_steps < 1 or self.corrector_steps < 0:
            raise ValueError(
                "sample.langevin_steps must be >= 1 and sample.corrector_steps >= 0, got "
                f"{self.langevin_steps} and {self.corrector_steps}"
            )
        if not math.isfinite(self.guidance):
            raise ValueError(f"sample.guidance must be finite, got {self.guidance}")
        if not math.isfinite(self.autoguidance):
            raise ValueError(f"sample.autoguidance must be finite, got {self.autoguidance}")
        if self.timesteps is not None and (
            len(set(self.timesteps)) != len(self.timesteps) or min(self.timesteps, default=0) < 0
        ):
            raise ValueError(
                f"sample.timesteps {list(self.timesteps)} must be distinct training steps >= 0 "
                "(each is one step of the sampler)"
            )
        if self.prompt is not None and self.label is not None:
            raise ValueError("give sample.prompt or sample.label, not both")
        if self.sampler not in SAMPLERS:
            raise ValueError(
                f"sample.sampler: {self.sampler!r} is not one of {', '.join(map(repr, SAMPLERS))}"
            )

    def steps_for(self, num_steps: int) -> int:
        """The grid size: ``steps``, or T for ancestral sampling and 50 for the rest."""
        if self.steps is not None:
            return self.steps
        return num_steps if self.sampler == "ancestral" else 50
