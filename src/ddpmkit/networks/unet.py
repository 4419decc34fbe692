"""The DDPM U-Net of Ho et al. (2020), Appendix B, laid out exactly like diffusers' ``UNet2DModel``.

Module names, parameter shapes and the forward computation match ``UNet2DModel`` configured as the
public ``google/ddpm-*`` checkpoints (positional time embedding with ``flip_sin_to_cos=False``,
``freq_shift=1``; ``downsample_padding=0``; ``DownBlock2D``/``AttnDownBlock2D`` and
``UpBlock2D``/``AttnUpBlock2D``), so their state dicts load with ``load_state_dict(strict=True)``.
With ``cross_attention_dim`` set, every attention level and the middle block also get
cross-attention to a context sequence (Rombach et al. 2022, §3.3) under new module names, so the
layout above is unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ddpmkit.networks.embeddings import TimestepEmbedding, timestep_embedding
from ddpmkit.networks.layers import (
    AttentionBlock,
    CrossAttentionBlock,
    Downsample,
    ResnetBlock2D,
    Upsample,
)

__all__ = ["UNet", "UNetConfig"]


@dataclass(frozen=True)
class UNetConfig:
    """Hyper-parameters of :class:`UNet`; defaults: the CIFAR-10 model of Ho et al. (2020)."""

    in_channels: int = field(default=3, metadata={"help": "channels of x_t"})
    out_channels: int | None = field(
        default=None,
        metadata={"help": "channels of the output; none: in_channels (2x for learned variance)"},
    )
    sample_size: int = field(
        default=32,
        metadata={"help": "training resolution; only used to decide which levels get attention"},
    )
    base_channels: int = field(
        default=128,
        metadata={"help": "channels of the first level; the time embedding is 4x this wide"},
    )
    channel_mults: tuple[int, ...] = field(
        default=(1, 2, 2, 2),
        metadata={"help": "level i has base_channels * channel_mults[i] channels"},
    )
    layers_per_block: int = field(
        default=2,
        metadata={"help": "resnets per down level (the up path has one more per level)"},
    )
    attention_resolutions: tuple[int, ...] = field(
        default=(16,), metadata={"help": "resolutions (at sample_size) with self-attention"}
    )
    dropout: float = field(default=0.1, metadata={"help": "dropout inside every residual block"})
    norm_groups: int = field(
        default=32, metadata={"help": "GroupNorm groups; must divide every level's channel count"}
    )
    norm_eps: float = field(default=1e-6, metadata={"help": "GroupNorm epsilon"})
    attention_head_dim: int | None = field(
        default=None, metadata={"help": "width of one attention head; none: a single head"}
    )
    patch_size: int = field(
        default=1,
        metadata={
            "help": "side of the square pixel patches folded into channels before the first "
            "convolution and unfolded after the last: the levels run at sample_size / "
            "patch_size, about patch_size² times cheaper (1: no patches)"
        },
    )
    num_classes: int | None = field(
        default=None,
        metadata={"help": "size of the class embedding table; none: unconditional"},
    )
    cross_attention_dim: int | None = field(
        default=None,
        metadata={
            "help": "width of the context (e.g. text) sequence read by cross-attention after "
            "every self-attention block; none: no cross-attention"
        },
    )

    def __post_init__(self) -> None:
        _check_positive(self)
        _check_channels(self)
        _check_resolutions(self)

    @property
    def output_channels(self) -> int:
        """Channels of the network output (``out_channels`` or ``in_channels``)."""
        return self.in_channels if self.out_channels is None else self.out_channels

    @property
    def time_embed_dim(self) -> int:
        """Width of the time (and class) embedding: 4 x base_channels, as in diffusers."""
        return 4 * self.base_channels

    @property
    def level_channels(self) -> tuple[int, ...]:
        """Channel count of each resolution level (diffusers' ``block_out_channels``)."""
        return tuple(self.base_channels * m for m in self.channel_mults)

    @property
    def level_resolutions(self) -> tuple[int, ...]:
        """Resolution of each level for an input of size ``sample_size``."""
        first = self.sample_size // self.patch_size
        return tuple(first // 2**i for i in range(len(self.channel_mults)))

    @property
    def size_divisor(self) -> int:
        """What input heights and widths must be divisible by: patches, then halvings."""
        return self.patch_size * cast(int, 2 ** (len(self.channel_mults) - 1))

    @property
    def attention_levels(self) -> tuple[bool, ...]:
        """Whether each level (down and the matching up level) has self-attention."""
        return tuple(r in self.attention_resolutions for r in self.level_resolutions)


def _check_positive(config: UNetConfig) -> None:
    ints = {
        "in_channels": config.in_channels,
        "out_channels": config.output_channels,
        "sample_size": config.sample_size,
        "base_channels": config.base_channels,
        "layers_per_block": config.layers_per_block,
        "norm_groups": config.norm_groups,
        "patch_size": config.patch_size,
    }
    for name, value in ints.items():
        if value <= 0:
            raise ValueError(f"UNetConfig.{name} must be positive, got {value}")
    if not config.channel_mults or any(m <= 0 for m in config.channel_mults):
        raise ValueError(
            f"UNetConfig.channel_mults must be non-empty and positive, got {config.channel_mults}"
        )
    if not 0.0 <= config.dropout < 1.0:
        raise ValueError(f"UNetConfig.dropout must be in [0, 1), got {config.dropout}")
    if config.norm_eps <= 0:
        raise ValueError(f"UNetConfig.norm_eps must be positive, got {config.norm_eps}")
    if config.num_classes is not None and config.num_classes <= 0:
        raise ValueError(
            f"UNetConfig.num_classes must be positive or None, got {config.num_classes}"
        )
    if config.cross_attention_dim is not None and config.cross_attention_dim <= 0:
        raise ValueError(
            "UNetConfig.cross_attention_dim must be positive or None, "
            f"got {config.cross_attention_dim}"
        )


def _check_channels(config: UNetConfig) -> None:
    if config.base_channels < 4:
        raise ValueError(
            f"UNetConfig.base_channels must be at least 4 (the sinusoidal time embedding uses "
            f"base_channels // 2 frequencies with freq_shift=1), got {config.base_channels}"
        )
    for channels in config.level_channels:
        if channels % config.norm_groups != 0:
            raise ValueError(
                f"UNetConfig: level channels {channels} (base_channels * channel_mult) are not "
                f"divisible by norm_groups={config.norm_groups}"
            )
    head_dim = config.attention_head_dim
    if head_dim is None:
        return
    if head_dim <= 0:
        raise ValueError(f"UNetConfig.attention_head_dim must be positive or None, got {head_dim}")
    attended = [c for c, a in zip(config.level_channels, config.attention_levels, strict=True) if a]
    for channels in [*attended, config.level_channels[-1]]:  # the middle block always attends
        if channels % head_dim != 0:
            raise ValueError(
                f"UNetConfig: attention channels {channels} are not divisible by "
                f"attention_head_dim={head_dim}"
            )


def _check_resolutions(config: UNetConfig) -> None:
    factor = config.size_divisor
    if config.sample_size % factor != 0:
        raise ValueError(
            f"UNetConfig.sample_size={config.sample_size} must be divisible by "
            f"patch_size * 2**(levels-1)={factor} for patch_size {config.patch_size} and "
            f"{len(config.channel_mults)} levels"
        )
    for resolution in config.attention_resolutions:
        if resolution not in config.level_resolutions:
            raise ValueError(
                f"UNetConfig.attention_resolutions contains {resolution}, which no level reaches; "
                f"the level resolutions for sample_size={config.sample_size} are "
                f"{config.level_resolutions}"
            )


def _resnet(config: UNetConfig, in_channels: int, out_channels: int) -> ResnetBlock2D:
    return ResnetBlock2D(
        in_channels,
        out_channels,
        config.time_embed_dim,
        dropout=config.dropout,
        norm_groups=config.norm_groups,
        norm_eps=config.norm_eps,
    )


def _attention(config: UNetConfig, channels: int) -> AttentionBlock:
    return AttentionBlock(
        channels,
        head_dim=config.attention_head_dim,
        norm_groups=config.norm_groups,
        norm_eps=config.norm_eps,
    )


def _cross_attentions(config: UNetConfig, channels: int, n: int) -> nn.ModuleList | None:
    """``n`` cross-attention blocks of width ``channels``, or None without a context."""
    if config.cross_attention_dim is None:
        return None
    return nn.ModuleList(
        CrossAttentionBlock(
            channels,
            config.cross_attention_dim,
            head_dim=config.attention_head_dim,
            norm_groups=config.norm_groups,
            norm_eps=config.norm_eps,
        )
        for _ in range(n)
    )


class DownBlock(nn.Module):
    """One encoder level: resnets (each followed by attention if enabled), then a downsampler.

    diffusers' ``DownBlock2D`` / ``AttnDownBlock2D``; every intermediate output is kept as a skip.
    """

    def __init__(
        self,
        config: UNetConfig,
        in_channels: int,
        out_channels: int,
        *,
        attention: bool,
        downsample: bool,
    ) -> None:
        super().__init__()
        n = config.layers_per_block
        self.attentions = (
            nn.ModuleList([_attention(config, out_channels) for _ in range(n)])
            if attention
            else None
        )
        self.resnets = nn.ModuleList(
            [
                _resnet(config, in_channels if j == 0 else out_channels, out_channels)
                for j in range(n)
            ]
        )
        self.downsamplers = nn.ModuleList([Downsample(out_channels)]) if downsample else None
        self.cross_attentions = _cross_attentions(config, out_channels, n) if attention else None

    def forward(
        self, x: Tensor, temb: Tensor, context: Tensor | None = None, mask: Tensor | None = None
    ) -> tuple[Tensor, list[Tensor]]:
        """Returns the level's output and its skip tensors, in the order they were produced."""
        skips: list[Tensor] = []
        for j, resnet in enumerate(self.resnets):
            x = resnet(x, temb)
            if self.attentions is not None:
                x = self.attentions[j](x)
            if self.cross_attentions is not None:
                x = self.cross_attentions[j](x, context, mask)
            skips.append(x)
        if self.downsamplers is not None:
            x = self.downsamplers[0](x)
            skips.append(x)
        return x, skips


class UpBlock(nn.Module):
    """One decoder level: ``layers_per_block + 1`` resnets on [x, skip], attention, upsampler.

    diffusers' ``UpBlock2D`` / ``AttnUpBlock2D``; ``skip_channels`` is the channel count of the
    last skip this level consumes (that of the next-finer encoder level).
    """

    def __init__(
        self,
        config: UNetConfig,
        prev_channels: int,
        out_channels: int,
        skip_channels: int,
        *,
        attention: bool,
        upsample: bool,
    ) -> None:
        super().__init__()
        n = config.layers_per_block + 1
        self.attentions = (
            nn.ModuleList([_attention(config, out_channels) for _ in range(n)])
            if attention
            else None
        )
        self.resnets = nn.ModuleList(
            [
                _resnet(
                    config,
                    (prev_channels if j == 0 else out_channels)
                    + (skip_channels if j == n - 1 else out_channels),
                    out_channels,
                )
                for j in range(n)
            ]
        )
        self.upsamplers = nn.ModuleList([Upsample(out_channels)]) if upsample else None
        self.cross_attentions = _cross_attentions(config, out_channels, n) if attention else None

    def forward(
        self,
        x: Tensor,
        skips: list[Tensor],
        temb: Tensor,
        context: Tensor | None = None,
        mask: Tensor | None = None,
    ) -> Tensor:
        """Consumes (pops) ``len(self.resnets)`` tensors from the end of ``skips``."""
        for j, resnet in enumerate(self.resnets):
            x = resnet(torch.cat([x, skips.pop()], dim=1), temb)
            if self.attentions is not None:
                x = self.attentions[j](x)
            if self.cross_attentions is not None:
                x = self.cross_attentions[j](x, context, mask)
        if self.upsamplers is not None:
            x = self.upsamplers[0](x)
        return x


class MidBlock(nn.Module):
    """The bottleneck: resnet, self-attention, resnet (diffusers' ``UNetMidBlock2D``); with a
    context, cross-attention follows the self-attention."""

    def __init__(self, config: UNetConfig, channels: int) -> None:
        super().__init__()
        self.attentions = nn.ModuleList([_attention(config, channels)])
        self.resnets = nn.ModuleList([_resnet(config, channels, channels) for _ in range(2)])
        self.cross_attentions = _cross_attentions(config, channels, 1)

    def forward(
        self, x: Tensor, temb: Tensor, context: Tensor | None = None, mask: Tensor | None = None
    ) -> Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        x = self.attentions[0](self.resnets[0](x, temb))
        if self.cross_attentions is not None:
            x = self.cross_attentions[0](x, context, mask)
        return cast(Tensor, self.resnets[1](x, temb))


class UNet(nn.Module):
    """The U-Net of Ho et al. (2020), Appendix B, in diffusers' ``UNet2DModel`` layout.

    ``forward(x, t, class_labels)`` maps x_t of shape (B, C, H, W) and timesteps t of shape (B,) or
    () (float, may be non-integer) to a (B, output_channels, H, W) tensor. H and W must be
    divisible by ``config.size_divisor``; they need not equal ``sample_size``. With
    ``patch_size`` p > 1 the image is cut into p×p patches whose pixels become channels (space to
    depth) before ``conv_in`` and the output is put back together after ``conv_out``: the
    down-sampling at the input of Hoogeboom et al. (2023, simple diffusion, §3). With
    ``num_classes`` set, ``class_labels`` (int64, shape (B,)) adds a learned class embedding to the
    time embedding; ``class_labels=None`` adds nothing (an unconditional evaluation of the same
    network). With ``cross_attention_dim`` set, ``context`` (B, L, cross_attention_dim) is
    required and ``context_mask`` (B, L) bool (True: may be attended; None: all) masks it.
    """

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        self.config = config
        channels = config.level_channels
        folded = config.patch_size**2
        self.conv_in = nn.Conv2d(config.in_channels * folded, channels[0], 3, padding=1)
        self.time_embedding = TimestepEmbedding(config.base_channels, config.time_embed_dim)
        self.class_embedding: nn.Embedding | None = None
        if config.num_classes is not None:
            self.class_embedding = nn.Embedding(config.num_classes, config.time_embed_dim)
        self.down_blocks = self._build_down_blocks(config)
        self.up_blocks = self._build_up_blocks(config)
        self.mid_block = MidBlock(config, channels[-1])
        self.conv_norm_out = nn.GroupNorm(config.norm_groups, channels[0], eps=config.norm_eps)
        self.conv_out = nn.Conv2d(channels[0], config.output_channels * folded, 3, padding=1)

    @staticmethod
    def _build_down_blocks(config: UNetConfig) -> nn.ModuleList:
        channels, levels = config.level_channels, len(config.level_channels)
        return nn.ModuleList(
            DownBlock(
                config,
                channels[max(i - 1, 0)],
                channels[i],
                attention=config.attention_levels[i],
                downsample=i < levels - 1,
            )
            for i in range(levels)
        )

    @staticmethod
    def _build_up_blocks(config: UNetConfig) -> nn.ModuleList:
        channels, levels = config.level_channels, len(config.level_channels)
        blocks = []
        for i in range(levels):
            level = levels - 1 - i  # up block i decodes encoder level `level`
            blocks.append(
                UpBlock(
                    config,
                    prev_channels=channels[min(level + 1, levels - 1)],
                    out_channels=channels[level],
                    skip_channels=channels[max(level - 1, 0)],
                    attention=config.attention_levels[level],
                    upsample=level > 0,
                )
            )
        return nn.ModuleList(blocks)

    def embed(self, t: Tensor | float, batch: int, class_labels: Tensor | None = None) -> Tensor:
        """Time (plus class) embedding (B, time_embed_dim); ``t`` has shape (B,), (1,) or ()."""
        t = torch.as_tensor(t, device=self.conv_in.weight.device).reshape(-1)
        if t.numel() == 1:
            t = t.expand(batch)
        elif t.numel() != batch:
            raise ValueError(f"t must be a scalar or have shape ({batch},), got {t.numel()} values")
        features = timestep_embedding(
            t, self.config.base_channels, flip_sin_to_cos=False, freq_shift=1
        )
        temb: Tensor = self.time_embedding(features.to(self.conv_in.weight.dtype))
        if class_labels is None:
            return temb
        if self.class_embedding is None:
            raise ValueError(
                "class_labels were given but the UNet has no class embedding (num_classes=None)"
            )
        return temb + cast(Tensor, self.class_embedding(class_labels)).to(temb.dtype)

    def forward(
        self,
        x: Tensor,
        t: Tensor | float,
        class_labels: Tensor | None = None,
        context: Tensor | None = None,
        context_mask: Tensor | None = None,
    ) -> Tensor:
        """(B, C_in, H, W), t (B,) or () -> (B, C_out, H, W); see the class docstring."""
        factor = self.config.size_divisor
        if x.shape[-2] % factor or x.shape[-1] % factor:
            raise ValueError(
                f"input height and width {tuple(x.shape[-2:])} must be divisible by {factor}"
            )
        if (context is None) != (self.config.cross_attention_dim is None):
            raise ValueError(
                "context must be given exactly when the UNet has cross-attention "
                f"(cross_attention_dim={self.config.cross_attention_dim})"
            )
        temb = self.embed(t, x.shape[0], class_labels)
        h = self.conv_in(F.pixel_unshuffle(x, self.config.patch_size))
        skips = [h]
        for down in self.down_blocks:
            h, level_skips = down(h, temb, context, context_mask)
            skips.extend(level_skips)
        h = self.mid_block(h, temb, context, context_mask)
        for up in self.up_blocks:
            h = up(h, skips, temb, context, context_mask)
        out = self.conv_out(F.silu(self.conv_norm_out(h)))
        return F.pixel_shuffle(out, self.config.patch_size)
