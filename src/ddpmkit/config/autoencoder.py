"""The options of ``ddpmkit train-autoencoder``: the data, the network and its training."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ddpmkit.data.config import DataConfig
from ddpmkit.networks.autoencoder import AutoencoderConfig


@dataclass(frozen=True)
class AutoencoderTrainConfig:
    steps: int = field(default=2000, metadata={"help": "optimizer steps in total"})
    batch_size: int = field(default=64, metadata={"help": "images per step"})
    lr: float = field(default=1e-3, metadata={"help": "peak learning rate of AdamW"})
    warmup_steps: int = field(default=100, metadata={"help": "linear learning-rate warm-up"})
    kl_weight: float = field(
        default=1e-6,
        metadata={
            "help": "weight of KL(q(z|x) ‖ N(0, I)) against the image's summed squared error: "
            "small, so that the latents stay detailed (Rombach et al. 2022, App. G: 1e-6)"
        },
    )
    grad_clip: float = field(default=1.0, metadata={"help": "clip the gradient norm (0 = off)"})
    seed: int = field(default=0, metadata={"help": "seeds weights, data order and z samples"})
    device: str = field(default="auto", metadata={"help": "auto (cuda if available), cpu, cuda"})

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"train.{name} must be >= 1, got {getattr(self, name)}")
        if self.warmup_steps < 0:
            raise ValueError(f"train.warmup_steps must be >= 0, got {self.warmup_steps}")
        if not 0 < self.lr < math.inf:
            raise ValueError(f"train.lr must be positive and finite, got {self.lr}")
        for name in ("kl_weight", "grad_clip"):
            if not 0 <= getattr(self, name) < math.inf:
                raise ValueError(f"train.{name} must be >= 0 and finite, got {getattr(self, name)}")


@dataclass(frozen=True)
class AutoencoderRunConfig:
    data: DataConfig = field(
        default_factory=DataConfig, metadata={"help": "the images the autoencoder learns"}
    )
    autoencoder: AutoencoderConfig = field(
        default_factory=AutoencoderConfig,
        metadata={
            "help": "the network; its input channels and latent scaling come from the data",
            "default_texts": {"in_channels": "the data's", "scaling_factor": "1 / std of latents"},
        },
    )
    train: AutoencoderTrainConfig = field(
        default_factory=AutoencoderTrainConfig, metadata={"help": "optimization"}
    )
