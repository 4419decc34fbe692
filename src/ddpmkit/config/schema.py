"""Configuration dataclasses: the single source of truth for every option.

Config files (TOML, YAML or JSON) and command-line flags are read into these classes by
``ddpmkit.config.parsing``; an unknown or mistyped key is an error there, never ignored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from ddpmkit.config.execution import compile_field, precision_field
from ddpmkit.core.grids import GridKind
from ddpmkit.core.parameterization import Parameterization
from ddpmkit.core.precision import Precision
from ddpmkit.data.config import DataConfig
from ddpmkit.learning_rate import LrDecay
from ddpmkit.losses import LossKind, LossWeighting, TimestepSampling
from ddpmkit.networks import MLPConfig, UNetConfig
from ddpmkit.networks.text import TextEncoderConfig
from ddpmkit.samplers import SAMPLERS, ReverseVariance

_DATA_CLASSES = "the data's class count with class_conditional (+1 with label_dropout), else none"
"""What a network's ``num_classes`` becomes in a run: it is set from the data, not by the user."""


@dataclass(frozen=True)
class ModelConfig:
    kind: Literal["unet", "mlp"] = field(
        default="unet",
        metadata={
            "help": "the network: the U-Net for images, the MLP for vectors, 2-D points and "
            "small images (flattened)"
        },
    )
    class_conditional: bool = field(
        default=False, metadata={"help": "add a class embedding; the classes come from the data"}
    )
    auto_size: bool = field(
        default=False,
        metadata={
            "help": "choose the network from the data and the time budget (train.minutes, "
            "else 10 minutes): the largest of a measured ladder of U-Nets that trains enough "
            "steps (of MLPs for 8×8 grey images when no U-Net does); `ddpmkit train` sets it "
            "when no model is named"
        },
    )
    label_dropout: float = field(
        default=0.0,
        metadata={
            "help": "share of training labels (or captions) replaced by the null class ∅ (the "
            "empty prompt), for classifier-free guidance"
        },
    )
    text_conditional: bool = field(
        default=False,
        metadata={
            "help": "condition on a text prompt through cross-attention (Rombach et al. 2022, "
            "§3.3); the training captions are model.captions filled with the data's classes"
        },
    )
    captions: tuple[str, ...] = field(
        default=("{name}", "a picture of {name}", "the {label}"),
        metadata={
            "help": "caption templates of the training images: {name} is the class name, {label} "
            "its number; each image gets one at random per step"
        },
    )
    class_names: tuple[str, ...] | None = field(
        default=None,
        metadata={
            "help": "the data's class names; filled in from the data",
            "default_text": "the data's",
        },
    )
    text: TextEncoderConfig = field(
        default_factory=TextEncoderConfig,
        metadata={
            "help": "the text encoder of a text-conditional model",
            "default_texts": {"vocabulary": "the captions' words"},
        },
    )
    autoencoder: str | None = field(
        default=None,
        metadata={
            "help": "an autoencoder folder (ddpmkit train-autoencoder, or a diffusers "
            "AutoencoderKL): the model learns its latents, samples are decoded (Rombach et al. "
            "2022)"
        },
    )
    unet: UNetConfig = field(
        default_factory=UNetConfig,
        metadata={
            "help": "the U-Net; its input channels and classes come from the data",
            "default_texts": {"in_channels": "the data's", "num_classes": _DATA_CLASSES},
        },
    )
    mlp: MLPConfig = field(
        default_factory=MLPConfig,
        metadata={
            "help": "the MLP; its input features and classes come from the data",
            "default_texts": {"dim": "the data's", "num_classes": _DATA_CLASSES},
        },
    )
    sample_shape: tuple[int, ...] | None = field(
        default=None,
        metadata={
            "help": "per-sample data shape; filled in from the data",
            "default_text": "the data's",
        },
    )

    def __post_init__(self) -> None:
        if not 0.0 <= self.label_dropout < 1.0:
            raise ValueError(f"model.label_dropout must lie in [0, 1), got {self.label_dropout}")
        if self.label_dropout > 0 and not (self.class_conditional or self.text_conditional):
            raise ValueError(
                "model.label_dropout needs model.class_conditional or model.text_conditional"
            )
        if self.class_conditional and self.text_conditional:
            raise ValueError(
                "model.class_conditional and model.text_conditional exclude each other: a text "
                "model learns the classes from its captions"
            )
        if self.text_conditional and self.kind != "unet":
            raise ValueError("model.text_conditional needs model.kind = 'unet' (cross-attention)")
        if self.text_conditional and not self.captions:
            raise ValueError("model.text_conditional needs at least one caption in model.captions")
        for template in self.captions:
            try:
                template.format(name="", label=0)
            except (KeyError, IndexError, ValueError) as error:
                raise ValueError(
                    f"model.captions: {template!r} is not a template of {{name}} and {{label}} "
                    f"({error})"
                ) from None


@dataclass(frozen=True)
class DiffusionConfig:
    schedule: Literal["linear", "cosine", "sigmoid", "custom"] = field(
        default="linear", metadata={"help": "β_t schedule"}
    )
    process: Literal["vp", "ve", "subvp"] = field(
        default="vp",
        metadata={
            "help": "vp: DDPM's variance-preserving chain; ve: NCSN's geometric noise levels "
            "σ_min … σ_max (variance exploding); subvp: Song et al.'s sub-VP of the β schedule"
        },
    )
    sigma_min: float = field(default=0.01, metadata={"help": "ve: the smallest noise level"})
    sigma_max: float = field(
        default=50.0,
        metadata={
            "help": "ve: the largest noise level (about the data's largest pairwise distance)"
        },
    )
    num_steps: int = field(
        default=1000, metadata={"help": "T; the linear range is rescaled by 1000/T (Improved DDPM)"}
    )
    beta_start: float = field(default=1e-4, metadata={"help": "linear schedule's β_1 at T = 1000"})
    beta_end: float = field(default=0.02, metadata={"help": "linear schedule's β_T at T = 1000"})
    betas: tuple[float, ...] | None = field(
        default=None, metadata={"help": "β_1 … β_T for schedule = custom"}
    )
    cosine_s: float = field(default=0.008, metadata={"help": "cosine schedule's offset s"})
    sigmoid_start: float = field(default=-3.0, metadata={"help": "sigmoid schedule's start"})
    sigmoid_end: float = field(default=3.0, metadata={"help": "sigmoid schedule's end"})
    sigmoid_tau: float = field(default=1.0, metadata={"help": "sigmoid schedule's temperature"})
    parameterization: Parameterization = field(
        default="eps",
        metadata={
            "help": "what the network predicts: the noise ε, x_0, v, the score ∇log q(x_t), or "
            "the posterior mean μ̃ (mean)"
        },
    )
    loss_weighting: LossWeighting = field(
        default="uniform",
        metadata={
            "help": "the weights of L_simple over t: uniform, min-SNR-γ, or ncsn: λ(σ) = σ² "
            "(Song & Ermon 2019), i.e. the ε-error whatever the parameterization"
        },
    )
    min_snr_gamma: float = field(default=5.0, metadata={"help": "γ of the min-SNR weighting"})
    learned_variance: bool = field(
        default=False,
        metadata={"help": "the network also outputs Σ_θ between β_t and β̃_t (Improved DDPM)"},
    )
    loss: LossKind = field(
        default="simple",
        metadata={
            "help": "simple: L_simple; hybrid: L_simple + λ L_vlb; vlb: L_vlb alone (the true "
            "bound; with fixed σ_t² = β_t unless learned_variance)"
        },
    )
    vlb_weight: float = field(default=0.001, metadata={"help": "λ of the hybrid loss"})
    timestep_sampling: TimestepSampling = field(
        default="uniform",
        metadata={
            "help": "t for the loss: uniform, importance-sampled by √E[L_t²], or lognormal: "
            "EDM's ln σ_t ~ N(lognormal_mean, lognormal_std²), unweighted"
        },
    )
    lognormal_mean: float = field(
        default=-1.2, metadata={"help": "lognormal: the mean of ln σ (EDM's P_mean)"}
    )
    lognormal_std: float = field(
        default=1.2, metadata={"help": "lognormal: the standard deviation of ln σ (EDM's P_std)"}
    )

    def __post_init__(self) -> None:
        if self.loss != "simple" and self.timestep_sampling == "lognormal":
            raise ValueError(
                f"diffusion.timestep_sampling = 'lognormal' reweights the objective; "
                f"diffusion.loss = {self.loss!r} needs 'uniform' or 'importance' to stay a bound"
            )
        if self.loss == "hybrid" and not self.learned_variance:
            raise ValueError(
                "diffusion.loss = 'hybrid' trains Σ_θ, so it needs diffusion.learned_variance = "
                "true (diffusion.loss = 'vlb' trains the true bound with fixed σ_t² = β_t)"
            )
        if self.learned_variance and self.loss == "simple":
            raise ValueError(
                "diffusion.learned_variance needs a loss that trains Σ_θ: set diffusion.loss to "
                "'hybrid' or 'vlb'"
            )
        if self.schedule == "custom" and self.betas is None:
            raise ValueError("diffusion.schedule = 'custom' needs diffusion.betas")
        if self.process == "ve" and self.schedule != "linear":
            raise ValueError(
                "diffusion.process = 've' has geometric noise levels (sigma_min, sigma_max), "
                f"not diffusion.schedule = {self.schedule!r}"
            )
        if not 0 < self.sigma_min < self.sigma_max < math.inf:
            raise ValueError(
                f"need 0 < diffusion.sigma_min < diffusion.sigma_max, got {self.sigma_min}, "
                f"{self.sigma_max}"
            )
        if self.betas is not None and len(self.betas) != self.num_steps:
            raise ValueError(
                f"diffusion.betas has {len(self.betas)} values but diffusion.num_steps is "
                f"{self.num_steps}"
            )
        if self.betas is not None and self.schedule != "custom":
            raise ValueError("diffusion.betas is given, so set diffusion.schedule = 'custom'")


@dataclass(frozen=True)
class TrainConfig:
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
    compile: bool = compile_field()
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


MAX_SAMPLE_STEPS = 100_000
"""The most grid levels a sampler may be asked for (T = 1000 needs at most 1000)."""


@dataclass(frozen=True)
class SampleConfig:
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
    compile: bool = compile_field()

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


@dataclass(frozen=True)
class RunConfig:
    data: DataConfig = field(
        default_factory=DataConfig, metadata={"help": "where the training data come from"}
    )
    model: ModelConfig = field(default_factory=ModelConfig, metadata={"help": "the network"})
    diffusion: DiffusionConfig = field(
        default_factory=DiffusionConfig, metadata={"help": "the noise schedule and the loss"}
    )
    train: TrainConfig = field(
        default_factory=TrainConfig, metadata={"help": "optimization, checkpoints and logs"}
    )
    sample: SampleConfig = field(
        default_factory=SampleConfig, metadata={"help": "how samples are drawn"}
    )

    def __post_init__(self) -> None:
        if self.train.batch_size == 0 and not self.model.auto_size:
            raise ValueError(
                "train.batch_size = 0 (chosen automatically) needs model.auto_size = true; "
                "otherwise give a batch size"
            )
