"""Translate between a diffusers ``AutoencoderKL`` config (its ``config.json`` as a dict) and an
`AutoencoderConfig`.

Only what `Autoencoder` reproduces exactly is accepted (the KL autoencoders of Rombach et
al. (2022) as diffusers stores them: ``DownEncoderBlock2D``/``UpDecoderBlock2D`` levels, SiLU,
both 1x1 quantisation convs); anything else raises ``ValueError`` naming the offending key and
value, so a checkpoint is never loaded into a network that computes something different. Absent
keys take diffusers' defaults. No diffusers import needed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ddpmkit.networks.autoencoder import AutoencoderConfig

__all__ = ["autoencoder_config_from_diffusers", "diffusers_config_from_autoencoder"]

CLASS_NAME = "AutoencoderKL"
DOWN_BLOCK = "DownEncoderBlock2D"
UP_BLOCK = "UpDecoderBlock2D"
NORM_EPS = 1e-6
"""The GroupNorm epsilon that diffusers' ``Encoder``/``Decoder`` hard-code."""

# keys whose value must be exactly this: key -> (required value, diffusers default)
_REQUIRED: dict[str, tuple[Any, Any]] = {
    "act_fn": ("silu", "silu"),
    "use_quant_conv": (True, True),
    "use_post_quant_conv": (True, True),
    "latents_mean": (None, None),
    "latents_std": (None, None),
}

# the other keys of AutoencoderKL(...) and their diffusers defaults
_DEFAULTS: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": [DOWN_BLOCK],
    "up_block_types": [UP_BLOCK],
    "block_out_channels": [64],
    "layers_per_block": 1,
    "latent_channels": 4,
    "norm_num_groups": 32,
    "sample_size": 32,
    "scaling_factor": 0.18215,
    "shift_factor": None,
    "force_upcast": True,
    "mid_block_add_attention": True,
}

_IGNORED = ("ddpmkit",)
"""Keys read by no network: ddpmkit's training metadata (diffusers ignores it too)."""


def _unsupported(key: str, value: Any, why: str) -> ValueError:
    """The error for a config value that `Autoencoder` does not reproduce."""
    return ValueError(f"unsupported AutoencoderKL config: {key}={value!r} ({why})")


def _check_keys(config: Mapping[str, Any]) -> None:
    """ValueError for another class or a key whose meaning is unknown here."""
    name = config.get("_class_name", CLASS_NAME)
    if name != CLASS_NAME:
        raise _unsupported("_class_name", name, f"expected {CLASS_NAME!r}")
    known = {*_REQUIRED, *_DEFAULTS, *_IGNORED}
    for key in config:
        if not key.startswith("_") and key not in known:
            raise _unsupported(key, config[key], "unknown key")
    for key, (required, default) in _REQUIRED.items():
        if config.get(key, default) != required:
            raise _unsupported(key, config.get(key, default), f"must be {required!r}")


def _level_channels(config: Mapping[str, Any]) -> list[int]:
    """block_out_channels, checked against the block types (all encoder/decoder blocks)."""
    channels = [int(c) for c in config.get("block_out_channels", _DEFAULTS["block_out_channels"])]
    if not channels or channels[0] <= 0 or any(c % channels[0] for c in channels):
        raise _unsupported("block_out_channels", channels, "positive multiples of the first")
    for key, block in (("down_block_types", DOWN_BLOCK), ("up_block_types", UP_BLOCK)):
        types = list(config.get(key, _DEFAULTS[key]))
        if types != [block] * len(channels):
            raise _unsupported(key, types, f"{len(channels)} x {block!r}, one per level")
    return channels


def autoencoder_config_from_diffusers(config: Mapping[str, Any]) -> AutoencoderConfig:
    """The `AutoencoderConfig` whose `Autoencoder` has the same state-dict layout
    and forward pass as ``AutoencoderKL(**config)``."""
    _check_keys(config)
    channels = _level_channels(config)
    in_channels = config.get("in_channels", _DEFAULTS["in_channels"])
    out_channels = config.get("out_channels", _DEFAULTS["out_channels"])
    if out_channels != in_channels:
        raise _unsupported("out_channels", out_channels, f"must equal in_channels={in_channels}")
    shift = config.get("shift_factor")
    return AutoencoderConfig(
        in_channels=int(in_channels),
        latent_channels=int(config.get("latent_channels", _DEFAULTS["latent_channels"])),
        base_channels=channels[0],
        channel_mults=tuple(c // channels[0] for c in channels),
        layers_per_block=int(config.get("layers_per_block", _DEFAULTS["layers_per_block"])),
        norm_groups=int(config.get("norm_num_groups", _DEFAULTS["norm_num_groups"])),
        norm_eps=NORM_EPS,
        mid_attention=bool(
            config.get("mid_block_add_attention", _DEFAULTS["mid_block_add_attention"])
        ),
        scaling_factor=float(config.get("scaling_factor", _DEFAULTS["scaling_factor"])),
        shift_factor=0.0 if shift is None else float(shift),
    )


def diffusers_config_from_autoencoder(
    config: AutoencoderConfig, *, sample_size: int = 256
) -> dict[str, Any]:
    """The complete ``AutoencoderKL`` config of the same network: the inverse of
    `autoencoder_config_from_diffusers`. ``sample_size`` (the training resolution) only
    sets diffusers' tile size."""
    if config.norm_eps != NORM_EPS:
        raise ValueError(
            f"AutoencoderConfig.norm_eps={config.norm_eps} has no AutoencoderKL form "
            f"(diffusers fixes the GroupNorm epsilon at {NORM_EPS})"
        )
    levels = len(config.channel_mults)
    required = {key: value for key, (value, _default) in _REQUIRED.items()}
    return {
        "_class_name": CLASS_NAME,
        **required,
        "in_channels": config.in_channels,
        "out_channels": config.in_channels,
        "down_block_types": [DOWN_BLOCK] * levels,
        "up_block_types": [UP_BLOCK] * levels,
        "block_out_channels": list(config.level_channels),
        "layers_per_block": config.layers_per_block,
        "latent_channels": config.latent_channels,
        "norm_num_groups": config.norm_groups,
        "sample_size": sample_size,
        "scaling_factor": config.scaling_factor,
        "shift_factor": None if config.shift_factor == 0.0 else config.shift_factor,
        "force_upcast": True,
        "mid_block_add_attention": config.mid_attention,
    }
