"""Configuration dataclasses: the single source of truth for every option.

Config files (TOML, YAML or JSON) and command-line flags are read into these classes by
``ddpmkit.config.parsing``; an unknown or mistyped key is an error there, never ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ddpmkit.core.grids import GridKind
from ddpmkit.core.parameterization import Parameterization
from ddpmkit.data.config import DataConfig
from ddpmkit.networks import MLPConfig, UNetConfig
from ddpmkit.samplers import ReverseVariance
from ddpmkit.training.losses import LossKind, LossWeighting, TimestepSampling


@dataclass(frozen=True)
class ModelConfig:
    kind: Literal["unet", "mlp"] = (
        "unet"  # the U-Net for images, the MLP for vectors and 2-D points
    )
    class_conditional: bool = False  # add a class embedding; the classes come from the data
    label_dropout: float = (
        0.0  # share of training labels replaced by the null class ∅, for classifier-free guidance
    )
    unet: UNetConfig = field(default_factory=UNetConfig)  # in_channels follows the data
    mlp: MLPConfig = field(default_factory=MLPConfig)  # dim follows the data
    sample_shape: tuple[int, ...] | None = None  # per-sample data shape, filled in from the data

    def __post_init__(self) -> None:
        if not 0.0 <= self.label_dropout < 1.0:
            raise ValueError(f"model.label_dropout must lie in [0, 1), got {self.label_dropout}")
        if self.label_dropout > 0 and not self.class_conditional:
            raise ValueError("model.label_dropout needs model.class_conditional = true")


@dataclass(frozen=True)
class DiffusionConfig:
    schedule: Literal["linear", "cosine", "sigmoid", "custom"] = "linear"  # β_t schedule
    num_steps: int = 1000  # T; the linear range is rescaled by 1000/T (Improved DDPM)
    beta_start: float = 1e-4  # linear schedule's β_1 at T = 1000
    beta_end: float = 0.02  # linear schedule's β_T at T = 1000
    betas: tuple[float, ...] | None = None  # β_1 … β_T for schedule = "custom"
    cosine_s: float = 0.008  # cosine schedule's offset s
    sigmoid_start: float = -3.0  # sigmoid schedule's start
    sigmoid_end: float = 3.0  # sigmoid schedule's end
    sigmoid_tau: float = 1.0  # sigmoid schedule's temperature
    parameterization: Parameterization = "eps"  # what the network predicts: eps, x0 or v
    loss_weighting: LossWeighting = "uniform"  # L_simple's uniform weights, or min-SNR-γ
    min_snr_gamma: float = 5.0  # γ of the min-SNR weighting
    learned_variance: bool = (
        False  # the network also outputs Σ_θ between β_t and β̃_t (Improved DDPM)
    )
    loss: LossKind = "simple"  # simple: L_simple; hybrid: L_simple + λ L_vlb; vlb: L_vlb alone
    vlb_weight: float = 0.001  # λ of the hybrid loss
    timestep_sampling: TimestepSampling = (
        "uniform"  # t for the loss: uniform, or importance-sampled by √E[L_t²]
    )

    def __post_init__(self) -> None:
        if self.loss != "simple" and not self.learned_variance:
            raise ValueError(
                f"diffusion.loss = {self.loss!r} trains Σ_θ, so it needs "
                "diffusion.learned_variance = true"
            )
        if self.learned_variance and self.loss == "simple":
            raise ValueError(
                "diffusion.learned_variance needs a loss that trains Σ_θ: set diffusion.loss to "
                "'hybrid' or 'vlb'"
            )
        if self.schedule == "custom" and self.betas is None:
            raise ValueError("diffusion.schedule = 'custom' needs diffusion.betas")
        if self.betas is not None and len(self.betas) != self.num_steps:
            raise ValueError(
                f"diffusion.betas has {len(self.betas)} values but diffusion.num_steps is "
                f"{self.num_steps}"
            )
        if self.betas is not None and self.schedule != "custom":
            raise ValueError("diffusion.betas is given, so set diffusion.schedule = 'custom'")


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 10000  # optimizer steps in total
    batch_size: int = 128  # samples per step
    lr: float = 2e-4  # peak learning rate of AdamW
    warmup_steps: int = 5000  # linear learning-rate warm-up from 0
    weight_decay: float = 0.0  # AdamW's decoupled weight decay
    adam_betas: tuple[float, float] = (0.9, 0.999)  # AdamW's (β1, β2)
    grad_clip: float = 1.0  # clip the gradient's global norm to this (0 = off)
    ema_decay: float = 0.9999  # EMA decay of the weights used for sampling
    ema_warmup: bool = True  # decay min(ema_decay, (1+n)/(10+n)) for the n-th update
    seed: int = 0  # seeds weights, data order, t, noise and dropout
    checkpoint_every: int = 1000  # steps between checkpoints (the last step always saves)
    sample_every: int = 1000  # steps between sample grids (0 = only at the end)
    log_every: int = 50  # steps between rows of log.csv
    num_workers: int = 0  # data-loading worker processes
    device: str = "auto"  # "auto" (cuda if available), "cpu", "cuda", "cuda:1", …
    bf16: bool = False  # run the network under bf16 autocast (fast on AMX CPUs and GPUs)
    eval_every: int = (
        0  # steps between held-out variational bounds (bits/dim) in log.csv; 0 = never
    )
    eval_samples: int = 32  # held-out items in that bound (each costs T network evaluations)

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"train.{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"train.ema_decay must lie in [0, 1), got {self.ema_decay}")
        if self.lr <= 0:
            raise ValueError(f"train.lr must be positive, got {self.lr}")


SamplerName = Literal[
    "ancestral", "ddim", "euler-maruyama", "pc", "ode-euler", "ode-heun", "ode-rk45",
    "dpm++2m", "dpm++3m", "edm-heun", "langevin",
]  # fmt: skip


@dataclass(frozen=True)
class SampleConfig:
    sampler: SamplerName = "ancestral"  # the sampling algorithm (see ddpmkit.samplers.SAMPLERS)
    steps: int | None = None  # noise levels to visit; None: all T for ancestral, 50 otherwise
    grid: GridKind | None = (
        None  # linspace|leading|trailing|uniform_t|log_snr|karras; None: sampler's
    )
    rho: float = 7.0  # ρ of the Karras grid
    timesteps: tuple[int, ...] | None = None  # a user list of training steps (replaces grid, steps)
    variance: ReverseVariance = (
        "auto"  # ancestral σ²_t: beta_tilde, beta, learned Σ_θ; auto = learned if there, else β̃
    )
    eta: float = 0.0  # ddim: 0 deterministic, 1 ancestral
    churn: float = 0.0  # edm-heun: S_churn (0 = deterministic)
    churn_min: float = 0.0  # edm-heun: S_tmin, lowest σ that gets churn
    churn_max: float = 1e9  # edm-heun: S_tmax, highest σ that gets churn
    churn_noise: float = 1.0  # edm-heun: S_noise
    snr: float = 0.16  # pc: the Langevin corrector's signal-to-noise ratio r
    corrector_steps: int = 1  # pc: corrector steps per level
    langevin_steps: int = 5  # langevin: steps per noise level
    langevin_step_size: float = 0.2  # langevin: c, the step at level i is c·σ_i²
    rtol: float = 1e-4  # ode-rk45: relative tolerance
    atol: float = 1e-4  # ode-rk45: absolute tolerance
    label: int | None = None  # class of every sample; None: sample i gets class i mod K
    guidance: float = 1.0  # classifier-free guidance scale w (1 = plain conditional, 0 = uncond.)
    classifier: str | None = None  # a classifier folder (ddpmkit train-classifier) to guide with
    classifier_scale: float = 1.0  # classifier guidance scale s on ∇log p_φ(y|x_t)
    clip_x0: bool = True  # clip the predicted x_0 to [-1, 1] (image data)
    dynamic_threshold: float | None = None  # Imagen's dynamic thresholding percentile, e.g. 0.995
    num_samples: int = 64  # samples to draw
    batch_size: int = 256  # samples per network call
    seed: int = 0  # sample i uses seed + i, whatever the batch size
    use_ema: bool = True  # sample with the EMA weights

    def __post_init__(self) -> None:
        if self.num_samples < 1 or self.batch_size < 1:
            raise ValueError("sample.num_samples and sample.batch_size must be >= 1")
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"sample.steps must be >= 1, got {self.steps}")
        if not 0.0 <= self.eta <= 1.0:
            raise ValueError(f"sample.eta must lie in [0, 1], got {self.eta}")

    def steps_for(self, num_steps: int) -> int:
        """The grid size: ``steps``, or T for ancestral sampling and 50 for the rest."""
        if self.steps is not None:
            return self.steps
        return num_steps if self.sampler == "ancestral" else 50


@dataclass(frozen=True)
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
