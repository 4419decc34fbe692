"""Translate between a diffusers ``UNet2DModel`` config (its ``config.json`` as a dict) and a
`UNetConfig`.

Only the DDPM-style subset that `UNet` reproduces exactly is accepted (the ``google/ddpm-*``
checkpoints of Ho et al. (2020)); anything else raises ``ValueError`` naming the offending key, so a
checkpoint is never loaded into a network that computes something different. No diffusers import
needed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ddpmkit.networks.unet import UNetConfig

__all__ = ["diffusers_config_from", "unet_config_from_diffusers"]

# keys whose value must be exactly this (the diffusers default where the key is absent)
_REQUIRED: dict[str, tuple[Any, Any]] = {  # key: (required value, diffusers default)
    "act_fn": ("silu", "silu"),
    "center_input_sample": (False, False),
    "time_embedding_type": ("positional", "positional"),
    "mid_block_scale_factor": (1, 1),
    "mid_block_type": ("UNetMidBlock2D", "UNetMidBlock2D"),
    "add_attention": (True, True),
    "class_embed_type": (None, None),
    "resnet_time_scale_shift": ("default", "default"),
    "downsample_type": ("conv", "conv"),
    "upsample_type": ("conv", "conv"),
    "time_embedding_dim": (None, None),
    "attn_norm_num_groups": (None, None),
}

# keys without a default that matches the DDPM checkpoints
_NEEDED = ("sample_size", "block_out_channels", "down_block_types", "up_block_types")


def _attention_levels(config: Mapping[str, Any]) -> list[bool]:
    down = list(config["down_block_types"])
    up = list(config["up_block_types"])
    if len(up) != len(down) or len(down) != len(config["block_out_channels"]):
        raise ValueError("down_block_types, up_block_types and block_out_channels differ in length")
    attention = []
    for i, name in enumerate(down):
        if name not in ("DownBlock2D", "AttnDownBlock2D"):
            raise ValueError(f"unsupported down block type {name!r}")
        expected_up = "AttnUpBlock2D" if name == "AttnDownBlock2D" else "UpBlock2D"
        if up[len(down) - 1 - i] != expected_up:
            raise ValueError(f"up_block_types do not mirror down_block_types at level {i}")
        attention.append(name == "AttnDownBlock2D")
    return attention


def unet_config_from_diffusers(
    config: Mapping[str, Any], *, dropout: float | None = None
) -> UNetConfig:
    """The `UNetConfig` whose `UNet` has the same state-dict layout and forward pass.

    ``dropout`` overrides the config's (diffusers stores 0.0 for the DDPM checkpoints; training
    used 0.1).
    """
    if config.get("_class_name", "UNet2DModel") != "UNet2DModel":
        raise ValueError(f"expected a UNet2DModel config, got {config['_class_name']!r}")
    missing = [k for k in _NEEDED if config.get(k) is None]
    if missing:
        raise ValueError(f"diffusers config lacks {missing} (no usable diffusers default)")
    for key, (required, default) in _REQUIRED.items():
        if config.get(key, default) != required:
            raise ValueError(f"unsupported diffusers config: {key}={config.get(key, default)!r}")
    if not isinstance(config["sample_size"], int):
        raise ValueError(f"non-square sample_size {config['sample_size']!r}")
    channels = [int(c) for c in config["block_out_channels"]]
    if any(c % channels[0] for c in channels):
        raise ValueError(f"block_out_channels {channels} are not multiples of the first entry")
    sample_size = int(config["sample_size"])
    levels = _attention_levels(config)
    return UNetConfig(
        in_channels=int(config.get("in_channels", 3)),
        out_channels=int(config.get("out_channels", 3)),
        sample_size=sample_size,
        base_channels=channels[0],
        channel_mults=tuple(c // channels[0] for c in channels),
        layers_per_block=int(config.get("layers_per_block", 2)),
        attention_resolutions=tuple(sample_size // 2**i for i, a in enumerate(levels) if a),
        dropout=float(config.get("dropout", 0.0)) if dropout is None else dropout,
        norm_groups=int(config.get("norm_num_groups", 32)),
        norm_eps=float(config.get("norm_eps", 1e-5)),
        attention_head_dim=config.get("attention_head_dim", 8),
        num_classes=config.get("num_class_embeds"),
        flip_sin_to_cos=bool(config.get("flip_sin_to_cos", True)),
        freq_shift=int(config.get("freq_shift", 0)),
        downsample_padding=_downsample_padding(config),
    )


def _downsample_padding(config: Mapping[str, Any]) -> int:
    """diffusers' ``downsample_padding`` (default 1); 0 and 1 are the two paddings there are."""
    padding = config.get("downsample_padding", 1)
    if padding not in (0, 1):
        raise ValueError(f"unsupported diffusers config: downsample_padding={padding!r}")
    return int(padding)


def diffusers_config_from(config: UNetConfig) -> dict[str, Any]:
    """The ``UNet2DModel`` keyword arguments of the same network: the inverse of
    `unet_config_from_diffusers`; ``UNet2DModel`` has no patches (``patch_size`` 1)."""
    if config.patch_size != 1:
        raise ValueError(
            f"a U-Net with patch_size {config.patch_size} has no diffusers UNet2DModel "
            "equivalent; only patch_size 1 exports"
        )
    levels = config.attention_levels
    down = ["AttnDownBlock2D" if a else "DownBlock2D" for a in levels]
    up = ["AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(levels)]
    required = {key: value for key, (value, _default) in _REQUIRED.items()}
    return required | {
        "sample_size": config.sample_size,
        "in_channels": config.in_channels,
        "out_channels": config.output_channels,
        "block_out_channels": list(config.level_channels),
        "down_block_types": down,
        "up_block_types": up,
        "layers_per_block": config.layers_per_block,
        "dropout": config.dropout,
        "norm_num_groups": config.norm_groups,
        "norm_eps": config.norm_eps,
        "attention_head_dim": config.attention_head_dim,
        "num_class_embeds": config.num_classes,
        "flip_sin_to_cos": config.flip_sin_to_cos,
        "freq_shift": config.freq_shift,
        "downsample_padding": config.downsample_padding,
    }
