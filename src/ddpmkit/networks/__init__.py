"""Denoising networks: the DDPM U-Net (diffusers ``UNet2DModel`` layout) and an MLP for toy data.

Networks know nothing about noise schedules: they map ``(x, t, class_labels)`` to a tensor that a
parameterization (epsilon, x_0 or v) interprets. This subpackage imports nothing else from ddpmkit.
A text-conditioned U-Net (``TextConditionedUNet``) takes prompts' token ids where class labels go.
"""

from ddpmkit.networks.diffusers_compat import diffusers_config_from, unet_config_from_diffusers
from ddpmkit.networks.mlp import MLPConfig, MLPDenoiser
from ddpmkit.networks.text import (
    ClipTextEncoder,
    TextEncoder,
    TextEncoderConfig,
    TextTransformer,
    WordTokenizer,
    build_text_encoder,
    tokenizer_for,
)
from ddpmkit.networks.text_unet import TextConditionedUNet
from ddpmkit.networks.unet import UNet, UNetConfig

__all__ = [
    "ClipTextEncoder",
    "MLPConfig",
    "MLPDenoiser",
    "TextConditionedUNet",
    "TextEncoder",
    "TextEncoderConfig",
    "TextTransformer",
    "UNet",
    "UNetConfig",
    "WordTokenizer",
    "build_text_encoder",
    "diffusers_config_from",
    "tokenizer_for",
    "unet_config_from_diffusers",
]
