"""Time-aware classifiers p_φ(y | x_t, t) of noised inputs, for classifier guidance.

Dhariwal & Nichol (2021), §4 and App. C, train the encoder half of their U-Net, followed by a
pooling head, on noised images x_t. ``NoisyClassifier`` is that encoder built from this package's
residual blocks and timestep embedding (global average pooling as the head);
``NoisyMLPClassifier`` is the residual MLP of ``ddpmkit.networks.mlp`` with one logit per class,
for vector data. Both take VP x_t and a (possibly fractional) step t, like the denoising networks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ddpmkit.networks.embeddings import TimestepEmbedding, timestep_embedding
from ddpmkit.networks.layers import Downsample, ResnetBlock2D
from ddpmkit.networks.mlp import MLPConfig, MLPDenoiser

__all__ = ["NoisyClassifier", "NoisyClassifierConfig", "NoisyMLPClassifier"]


@dataclass(frozen=True)
class NoisyClassifierConfig:
    """Hyper-parameters of `NoisyClassifier`."""

    in_channels: int  # channels of x_t
    sample_size: int  # side of the (square) inputs; divisible by 2**(levels-1)
    num_classes: int  # logits per input (at least 2)
    base_channels: int = 32  # channels of the first level; the time embedding is 4x this wide
    channel_mults: tuple[int, ...] = (1, 2)  # level i has base_channels * channel_mults[i] channels
    layers_per_block: int = 1  # resnets per level
    dropout: float = 0.0  # dropout inside every residual block
    norm_groups: int = 8  # GroupNorm groups; must divide every level's channel count

    def __post_init__(self) -> None:
        for name in ("in_channels", "sample_size", "layers_per_block", "norm_groups"):
            if getattr(self, name) <= 0:
                raise ValueError(
                    f"NoisyClassifierConfig.{name} must be positive, got {getattr(self, name)}"
                )
        if self.num_classes < 2:
            raise ValueError(
                f"NoisyClassifierConfig.num_classes must be at least 2, got {self.num_classes}"
            )
        if self.base_channels < 4:
            raise ValueError(
                "NoisyClassifierConfig.base_channels must be at least 4 (the sinusoidal time "
                f"embedding uses base_channels // 2 frequencies), got {self.base_channels}"
            )
        if not self.channel_mults or any(m <= 0 for m in self.channel_mults):
            raise ValueError(
                "NoisyClassifierConfig.channel_mults must be non-empty and positive, "
                f"got {self.channel_mults}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"NoisyClassifierConfig.dropout must be in [0, 1), got {self.dropout}")
        bad = [c for c in self.level_channels if c % self.norm_groups]
        if bad:
            raise ValueError(
                f"NoisyClassifierConfig: level channels {bad} are not divisible by "
                f"norm_groups={self.norm_groups}"
            )
        if self.sample_size % self.downsample_factor:
            raise ValueError(
                f"NoisyClassifierConfig.sample_size={self.sample_size} must be divisible by "
                f"{self.downsample_factor} for {len(self.channel_mults)} levels"
            )

    @property
    def time_embed_dim(self) -> int:
        """Width of the time embedding: 4 x base_channels, as in the U-Net."""
        return 4 * self.base_channels

    @property
    def level_channels(self) -> tuple[int, ...]:
        """Channel count of each resolution level."""
        return tuple(self.base_channels * m for m in self.channel_mults)

    @property
    def downsample_factor(self) -> int:
        """How much the last level is smaller than the input: 2**(levels-1)."""
        return cast(int, 2 ** (len(self.channel_mults) - 1))


class ClassifierLevel(nn.Module):
    """One encoder level: ``layers_per_block`` resnets, then a stride-2 downsampler if not last."""

    def __init__(
        self, config: NoisyClassifierConfig, in_channels: int, out_channels: int, downsample: bool
    ) -> None:
        super().__init__()
        self.resnets = nn.ModuleList(
            ResnetBlock2D(
                in_channels if j == 0 else out_channels,
                out_channels,
                config.time_embed_dim,
                dropout=config.dropout,
                norm_groups=config.norm_groups,
            )
            for j in range(config.layers_per_block)
        )
        self.downsample = Downsample(out_channels) if downsample else None

    def forward(self, x: Tensor, temb: Tensor) -> Tensor:
        """(B, C_in, H, W) -> (B, C_out, H', W'), H' = ceil(H/2) when downsampling."""
        for resnet in self.resnets:
            x = resnet(x, temb)
        return x if self.downsample is None else cast(Tensor, self.downsample(x))


class NoisyClassifier(nn.Module):
    """The U-Net's encoder with a pooled linear head: logits of p_φ(y | x_t, t).

    Dhariwal & Nichol (2021), §4 (their classifier: the U-Net's downsampling trunk, then a pool).
    ``forward(x_t, t)`` takes x_t of shape (B, C, H, W) and t of shape (B,) or () (float, may be
    fractional) and returns (B, num_classes) logits.
    """

    def __init__(self, config: NoisyClassifierConfig) -> None:
        super().__init__()
        self.config = config
        channels = config.level_channels
        self.conv_in = nn.Conv2d(config.in_channels, channels[0], kernel_size=3, padding=1)
        self.time_embedding = TimestepEmbedding(config.base_channels, config.time_embed_dim)
        self.levels = nn.ModuleList(
            ClassifierLevel(config, channels[max(i - 1, 0)], channels[i], i < len(channels) - 1)
            for i in range(len(channels))
        )
        self.norm_out = nn.GroupNorm(config.norm_groups, channels[-1], eps=1e-6)
        self.head = nn.Linear(channels[-1], config.num_classes)

    def embed(self, t: Tensor | float, batch: int) -> Tensor:
        """Time embedding (B, time_embed_dim); ``t`` has shape (B,), (1,) or ()."""
        t = torch.as_tensor(t, device=self.conv_in.weight.device).reshape(-1)
        if t.numel() == 1:
            t = t.expand(batch)
        elif t.numel() != batch:
            raise ValueError(f"t must be a scalar or have shape ({batch},), got {t.numel()} values")
        features = timestep_embedding(t, self.config.base_channels, freq_shift=1)
        return cast(Tensor, self.time_embedding(features.to(self.conv_in.weight.dtype)))

    def forward(self, x_t: Tensor, t: Tensor | float) -> Tensor:
        """(B, C, H, W), t (B,) or () -> (B, num_classes) logits."""
        factor = self.config.downsample_factor
        if x_t.shape[-2] % factor or x_t.shape[-1] % factor:
            raise ValueError(
                f"input height and width {tuple(x_t.shape[-2:])} must be divisible by {factor}"
            )
        temb = self.embed(t, x_t.shape[0])
        h = self.conv_in(x_t)
        for level in self.levels:
            h = level(h, temb)
        return cast(Tensor, self.head(F.silu(self.norm_out(h)).mean(dim=(2, 3))))


class NoisyMLPClassifier(MLPDenoiser):
    """The residual time-conditioned MLP with ``num_classes`` outputs: logits of p_φ(y | x_t, t).

    For vector data (B, dim); the trunk is ``MLPDenoiser``'s (Ho et al. 2020, App. B conditioning).
    """

    def __init__(
        self,
        dim: int,
        num_classes: int,
        *,
        hidden: int = 64,
        num_blocks: int = 2,
        time_embed_dim: int = 32,
    ) -> None:
        if num_classes < 2:
            raise ValueError(f"NoisyMLPClassifier needs at least 2 classes, got {num_classes}")
        super().__init__(
            MLPConfig(
                dim=dim,
                hidden=hidden,
                num_blocks=num_blocks,
                time_embed_dim=time_embed_dim,
                out_dim=num_classes,
            )
        )

    def forward(self, x_t: Tensor, t: Tensor | float, class_labels: Tensor | None = None) -> Tensor:
        """(B, dim), t (B,) or () -> (B, num_classes) logits. ``class_labels`` is there only for
        ``MLPDenoiser``'s signature: the classifier has no class embedding, so it must be None."""
        return self.forward_flat(x_t, t, class_labels)
