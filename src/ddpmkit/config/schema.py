"""Configuration dataclasses: the single source of truth for every option. A run's configuration
is five sections: data, model and diffusion here, train (``train_section``) and sample
(``sample_section``).

Config files (TOML, YAML or JSON) and command-line flags are read into these classes by
``ddpmkit.config.parsing``; an unknown or mistyped key is an error there, never ignored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from ddpmkit.config.sample_section import MAX_SAMPLE_STEPS, SampleConfig
from ddpmkit.config.train_section import TrainConfig
from ddpmkit.core.parameterization import Parameterization
from ddpmkit.data.config import DataConfig
from ddpmkit.losses import LossKind, LossWeighting, TimestepSampling
from ddpmkit.networks import MLPConfig, UNetConfig
from ddpmkit.networks.text import TextEncoderConfig

__all__ = [
    "MAX_SAMPLE_STEPS",
    "DataConfig",
    "DiffusionConfig",
    "ModelConfig",
    "RunConfig",
    "SampleConfig",
    "TrainConfig",
]

_DATA_CLASSES = "the data's class count with class_conditional (+1 with label_dropout), else none"
"""What a network's ``num_classes`` becomes in a run: it is set from the data, not by the user."""


@dataclass(frozen=True)
class ModelConfig:
    """The ``model`` section: which network (U-Net or MLP, sized automatically or given), its
    conditioning (classes, text) and a latent model's autoencoder. Each field's ``help`` is its
    ``--model.*`` flag's help (``ddpmkit train --help``)."""

    kind: Literal["unet", "mlp", "diffusers"] = field(
        default="unet",
        metadata={
            "help": "the network: the U-Net for images, the MLP for vectors, 2-D points and "
            "small images (flattened); diffusers: a diffusers UNet2DModel of any layout, run by "
            "diffusers itself (model.diffusers_unet)"
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
    diffusers_unet: str | None = field(
        default=None,
        metadata={
            "help": "kind diffusers: the UNet2DModel's config.json, as JSON text (an imported "
            "diffusers folder whose layout ddpmkit's U-Net does not reproduce)"
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
        if (self.kind == "diffusers") != (self.diffusers_unet is not None):
            raise ValueError("model.kind 'diffusers' and model.diffusers_unet go together")
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


MAX_NUM_STEPS = 100_000
"""The longest forward chain ``diffusion.num_steps`` may ask for (the literature's: 1,000–4,000)."""


@dataclass(frozen=True)
class DiffusionConfig:
    """The ``diffusion`` section: the noise schedule β_t and process (VP, VE, sub-VP), the
    parameterization the network predicts, and the loss (weighting, timestep sampling, hybrid
    L_vlb). Each field's ``help`` is its ``--diffusion.*`` flag's help."""

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
        if not 1 <= self.num_steps <= MAX_NUM_STEPS:
            raise ValueError(
                f"diffusion.num_steps = {self.num_steps} is outside 1 … {MAX_NUM_STEPS:,}: the "
                "literature's chains have 1,000–4,000 steps, and every schedule quantity and "
                "grid holds one value per step"
            )
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
class RunConfig:
    """A whole run's configuration, the single source of truth of every option: the sections
    ``data``, ``model``, ``diffusion``, ``train`` and ``sample``. Build one from nested dicts with
    ``ddpmkit.config.parsing.from_dict`` (which checks every key and value); ``config.json`` in a
    run folder is this, resolved."""

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
