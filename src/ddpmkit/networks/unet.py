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
from ddpmkit.networks.unet_config import UNetConfig

__all__ = ["UNet", "UNetConfig"]


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
        self.downsamplers = (
            nn.ModuleList([Downsample(out_channels, config.downsample_padding)])
            if downsample
            else None
        )
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
            t,
            self.config.base_channels,
            flip_sin_to_cos=self.config.flip_sin_to_cos,
            freq_shift=self.config.freq_shift,
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
