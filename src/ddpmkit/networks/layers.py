"""Building blocks of the DDPM U-Net: residual block, self-attention, down- and up-sampling.

The structure is that of Ho et al. (2020), Appendix B (a PixelCNN++-style Wide ResNet with
self-attention); module and parameter names follow diffusers (``ResnetBlock2D``, ``Attention``,
``Downsample2D``, ``Upsample2D``) so that its ``UNet2DModel`` checkpoints load with ``strict=True``.
"""

from __future__ import annotations

from typing import cast

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["AttentionBlock", "CrossAttentionBlock", "Downsample", "ResnetBlock2D", "Upsample"]


class ResnetBlock2D(nn.Module):
    """Residual block with a per-channel timestep bias, Ho et al. (2020), Appendix B.

    ``h = conv1(SiLU(norm1(x))) + time_emb_proj(SiLU(temb))``,
    ``h = conv2(dropout(SiLU(norm2(h))))``, output ``shortcut(x) + h``, where the shortcut is a 1x1
    conv (``conv_shortcut``) when the channel count changes and the identity otherwise.
    ``temb_channels=None`` drops the timestep bias (no ``time_emb_proj``): the unconditioned block
    of the autoencoder of Rombach et al. (2022).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        temb_channels: int | None,
        *,
        dropout: float = 0.0,
        norm_groups: int = 32,
        norm_eps: float = 1e-6,
    ) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(norm_groups, in_channels, eps=norm_eps)
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)
        self.time_emb_proj: nn.Linear | None = None
        if temb_channels is not None:
            self.time_emb_proj = nn.Linear(temb_channels, out_channels)
        self.norm2 = nn.GroupNorm(norm_groups, out_channels, eps=norm_eps)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1)
        self.conv_shortcut: nn.Conv2d | None = None
        if in_channels != out_channels:
            self.conv_shortcut = nn.Conv2d(in_channels, out_channels, kernel_size=1)

    def forward(self, x: Tensor, temb: Tensor | None = None) -> Tensor:
        """x: (B, C_in, H, W), temb: (B, temb_channels) or None -> (B, C_out, H, W)."""
        if (temb is None) != (self.time_emb_proj is None):
            raise ValueError("temb must be given exactly when the block has temb_channels")
        h: Tensor = self.conv1(F.silu(self.norm1(x)))
        if self.time_emb_proj is not None:
            assert temb is not None  # checked above: temb is given exactly with time_emb_proj
            h = h + self.time_emb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        shortcut: Tensor = x if self.conv_shortcut is None else self.conv_shortcut(x)
        return shortcut + h


class AttentionBlock(nn.Module):
    """Residual multi-head self-attention over the H*W positions, Ho et al. (2020), Appendix B.

    ``x + to_out(softmax(q k^T / sqrt(d)) v)`` with ``q, k, v`` linear maps of ``group_norm(x)``;
    ``head_dim=None`` means a single head of width ``channels`` (the DDPM checkpoints).
    """

    def __init__(
        self,
        channels: int,
        *,
        head_dim: int | None = None,
        norm_groups: int = 32,
        norm_eps: float = 1e-6,
    ) -> None:
        super().__init__()
        head_dim = channels if head_dim is None else head_dim
        if channels % head_dim != 0:
            raise ValueError(f"channels={channels} is not divisible by head_dim={head_dim}")
        self.num_heads = channels // head_dim
        self.group_norm = nn.GroupNorm(norm_groups, channels, eps=norm_eps)
        self.to_q = nn.Linear(channels, channels)
        self.to_k = nn.Linear(channels, channels)
        self.to_v = nn.Linear(channels, channels)
        self.to_out = nn.ModuleList([nn.Linear(channels, channels)])

    def _split_heads(self, t: Tensor) -> Tensor:
        batch, length, channels = t.shape
        # (B, L, C) -> (B, heads, L, C / heads)
        return t.view(batch, length, self.num_heads, channels // self.num_heads).transpose(1, 2)

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        batch, channels, height, width = x.shape
        normed: Tensor = self.group_norm(x)
        h: Tensor = normed.view(batch, channels, height * width).transpose(1, 2)  # (B, HW, C)
        q, k, v = (self._split_heads(proj(h)) for proj in (self.to_q, self.to_k, self.to_v))
        h = F.scaled_dot_product_attention(q, k, v)  # (B, heads, HW, C / heads)
        h = h.transpose(1, 2).reshape(batch, height * width, channels)
        h = self.to_out[0](h)
        return x + h.transpose(1, 2).reshape(batch, channels, height, width)


class Downsample(nn.Module):
    """Halve H and W with a stride-2 3x3 conv.

    ``padding`` 0 zero-pads right and bottom by one first: TensorFlow's "SAME" padding of the
    original DDPM code (diffusers ``downsample_padding=0``); 1 pads every side by one inside the
    conv (diffusers' default ``downsample_padding=1``).
    """

    def __init__(self, channels: int, padding: int = 0) -> None:
        super().__init__()
        self.padding = padding
        self.conv = nn.Conv2d(channels, channels, kernel_size=3, stride=2, padding=padding)

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, C, ceil(H/2), ceil(W/2))."""
        return cast(Tensor, self.conv(F.pad(x, (0, 1, 0, 1)) if self.padding == 0 else x))


class Upsample(nn.Module):
    """Double H and W by nearest-neighbour interpolation followed by a 3x3 conv."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size=3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, C, 2H, 2W)."""
        return cast(Tensor, self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest")))


class CrossAttentionBlock(nn.Module):
    """Residual multi-head cross-attention from the H*W positions to a context sequence.

    ``x + to_out(softmax(q k^T / sqrt(d) + mask) v)`` with ``q`` a linear map of
    ``group_norm(x)`` and ``k, v`` linear maps of the context (B, L, context_dim): the
    conditioning layer of Rombach et al. (2022), Section 3.3 (scaled dot-product attention of
    Vaswani et al. (2017)). ``to_out`` starts at zero, so a freshly built block is the identity
    and a conditional U-Net starts as the unconditional one (the practice of LDM and ControlNet).
    ``head_dim=None`` means a single head of width ``channels``.
    """

    def __init__(
        self,
        channels: int,
        context_dim: int,
        *,
        head_dim: int | None = None,
        norm_groups: int = 32,
        norm_eps: float = 1e-6,
    ) -> None:
        super().__init__()
        head_dim = channels if head_dim is None else head_dim
        if channels % head_dim != 0:
            raise ValueError(f"channels={channels} is not divisible by head_dim={head_dim}")
        self.num_heads = channels // head_dim
        self.group_norm = nn.GroupNorm(norm_groups, channels, eps=norm_eps)
        self.to_q = nn.Linear(channels, channels)
        self.to_k = nn.Linear(context_dim, channels)
        self.to_v = nn.Linear(context_dim, channels)
        self.to_out = nn.Linear(channels, channels)
        nn.init.zeros_(self.to_out.weight)
        nn.init.zeros_(self.to_out.bias)

    def _split_heads(self, t: Tensor) -> Tensor:
        batch, length, channels = t.shape
        # (B, L, C) -> (B, heads, L, C / heads)
        return t.view(batch, length, self.num_heads, channels // self.num_heads).transpose(1, 2)

    def forward(self, x: Tensor, context: Tensor, context_mask: Tensor | None = None) -> Tensor:
        """x (B, C, H, W), context (B, L, context_dim), context_mask (B, L) bool, True where a
        context position may be attended (None: all) -> (B, C, H, W)."""
        batch, channels, height, width = x.shape
        normed: Tensor = self.group_norm(x)
        h: Tensor = normed.view(batch, channels, height * width).transpose(1, 2)  # (B, HW, C)
        q = self._split_heads(self.to_q(h))
        k, v = self._split_heads(self.to_k(context)), self._split_heads(self.to_v(context))
        mask = None if context_mask is None else context_mask[:, None, None, :]  # (B, 1, 1, L)
        h = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, heads, HW, C / heads)
        h = self.to_out(h.transpose(1, 2).reshape(batch, height * width, channels))
        return x + h.transpose(1, 2).reshape(batch, channels, height, width)
