"""The JSON types of the keys ddpmkit reads from diffusers' ``config.json`` and
``scheduler_config.json``: a value of another type is an error naming the file and the key, so
that a string "false" is never read as true, nor a string "1e-4" as a number."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

BOOLEANS = (
    "flip_sin_to_cos", "center_input_sample", "clip_sample", "thresholding",
    "rescale_betas_zero_snr", "set_alpha_to_one", "scaling_factor_is_set",
)  # fmt: skip
INTEGERS = (
    "num_train_timesteps", "in_channels", "out_channels", "layers_per_block", "norm_num_groups",
    "freq_shift", "downsample_padding", "num_class_embeds", "steps_offset", "latent_channels",
)  # fmt: skip
NUMBERS = (
    "beta_start", "beta_end", "clip_sample_range", "sample_max_value",
    "dynamic_thresholding_ratio", "norm_eps", "dropout", "_ddpmkit_label_dropout",
    "scaling_factor",
)  # fmt: skip


def check_json_types(config: dict[str, Any], where: Path | str) -> None:
    """Refuse a known key whose value has the wrong JSON type (None is diffusers' "unset").

    Args:
        config: the parsed JSON object.
        where: the file it came from, for the message.
    """
    for key, value in config.items():
        if value is None:
            continue
        if key in BOOLEANS and not isinstance(value, bool):
            _refuse(where, key, value, "true or false")
        if key in INTEGERS and (isinstance(value, bool) or not isinstance(value, int)):
            _refuse(where, key, value, "an integer")
        if key in NUMBERS and not _is_number(value):
            _refuse(where, key, value, "a finite number")
    size = config.get("sample_size")
    if size is not None and not _is_size(size):
        _refuse(where, "sample_size", size, "an integer or a list [height, width] of integers")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_size(value: Any) -> bool:
    def positive(item: Any) -> bool:
        return isinstance(item, int) and not isinstance(item, bool) and item > 0

    if isinstance(value, list):
        return len(value) == 2 and all(positive(item) for item in value)
    return positive(value)


def _refuse(where: Path | str, key: str, value: Any, expected: str) -> None:
    raise ValueError(f"{where}: {key} must be {expected}, got {value!r}")
