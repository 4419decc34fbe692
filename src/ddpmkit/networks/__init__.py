"""Denoising networks: the DDPM U-Net (diffusers ``UNet2DModel`` layout) and an MLP for toy data.

Networks know nothing about noise schedules: they map ``(x, t, class_labels)`` to a tensor that a
parameterization (epsilon, x_0 or v) interprets. This subpackage imports nothing else from ddpmkit.
"""

from ddpmkit.networks.diffusers_compat import diffusers_config_from, unet_config_from_diffusers
from ddpmkit.networks.mlp import MLPConfig, MLPDenoiser
from ddpmkit.networks.unet import UNet, UNetConfig

__all__ = [
    "MLPConfig",
    "MLPDenoiser",
    "UNet",
    "UNetConfig",
    "diffusers_config_from",
    "unet_config_from_diffusers",
]
