"""A U-Net conditioned on text through cross-attention (Rombach et al. 2022, §3.3)."""

from __future__ import annotations

from typing import cast

import torch
from torch import Tensor, nn

from ddpmkit.networks.text import TextEncoder
from ddpmkit.networks.unet import UNet

__all__ = ["TextConditionedUNet"]


class TextConditionedUNet(nn.Module):
    """A text encoder and a U-Net with cross-attention to its context, trained together.

    ``forward(x, t, class_labels)`` takes the prompts' token ids (B, L) int64, 0 = padding, where
    class labels go elsewhere; ``None`` (or a row of zeros) is the empty prompt ∅, so classifier-free
    guidance with ``null_label=0`` works unchanged. ``config`` is the U-Net's config.
    """

    def __init__(self, unet: UNet, text_encoder: TextEncoder) -> None:
        super().__init__()
        if unet.config.cross_attention_dim != text_encoder.width:
            raise ValueError(
                f"the UNet's cross_attention_dim={unet.config.cross_attention_dim} must equal the "
                f"text encoder's width={text_encoder.width}"
            )
        self.unet = unet
        self.text_encoder = text_encoder
        self.config = unet.config

    def forward(self, x: Tensor, t: Tensor | float, class_labels: Tensor | None = None) -> Tensor:
        """(B, C_in, H, W), t (B,) or (), token ids (B, L) or None -> (B, C_out, H, W)."""
        tokens = class_labels
        if tokens is None:
            tokens = torch.zeros(
                x.shape[0], self.text_encoder.max_length, dtype=torch.int64, device=x.device
            )
        context, mask = self.text_encoder(tokens)
        return cast(Tensor, self.unet(x, t, context=context, context_mask=mask))
