"""DataConfig: every option of the data pipeline, validated once at construction."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeGuard

SOURCES = ("digits", "toy2d", "folder", "array", "mnist", "cifar10")
TOY_NAMES = ("moons", "swiss_roll", "8gaussians", "checkerboard")
CHANNEL_COUNTS = (1, 3, 4)
_NEEDS_PATH = ("folder", "array", "mnist", "cifar10")
NATIVE_LEVELS = {"digits": 17}
"""Grey levels of the sources that are not 8-bit (the digits are 0 … 16); the rest have 256."""


@dataclass(frozen=True)
class DataConfig:
    """Where the training data comes from and how it is shaped."""

    source: str = field(
        default="digits",
        metadata={
            "help": "where the data come from: the bundled 8×8 digits, 2-D toy points, an image "
            "folder, a .npy/.npz array, or MNIST or CIFAR-10 (torchvision)",
            "choices": SOURCES,
        },
    )
    path: str | None = field(
        default=None,
        metadata={
            "help": "image folder, .npy/.npz file, or torchvision root "
            "(required for folder, array, mnist, cifar10)"
        },
    )
    image_size: int | tuple[int, int] | None = field(
        default=None,
        metadata={
            "help": "resize + center-crop target H,W, square if one int; required for folder; "
            "none keeps the native size (array, mnist, cifar10, digits)"
        },
    )
    channels: int | None = field(
        default=None,
        metadata={
            "help": "folder images converted to 1 (L), 3 (RGB) or 4 (RGBA) channels; none: 3",
            "choices": CHANNEL_COUNTS,
        },
    )
    hflip: bool = field(
        default=False,
        metadata={"help": "random horizontal flip, applied by the trainer on batches"},
    )
    labels_from_subfolders: bool = field(
        default=False,
        metadata={"help": "folder only: labels from first-level subfolder names (sorted: 0, 1, …)"},
    )
    skip_bad_files: bool = field(
        default=False,
        metadata={
            "help": "folder only: leave out files that do not decode (truncated, corrupt, "
            "unsupported mode) with a warning naming them, instead of stopping"
        },
    )
    toy: str = field(
        default="moons", metadata={"help": "toy2d only: the 2-D distribution", "choices": TOY_NAMES}
    )
    toy_size: int = field(default=10000, metadata={"help": "toy2d only: points per split"})
    array_key: str | None = field(
        default=None,
        metadata={"help": "array only: key of the data in a .npz; none: the single non-label key"},
    )
    heldout_fraction: float = field(
        default=0.1,
        metadata={
            "help": "fraction held out, in [0, 1), for sources without a canonical split "
            "(folder, array)"
        },
    )
    seed: int = field(
        default=0,
        metadata={
            "help": "seed of the folder/array split and of the toy2d draw (held-out: seed + 1)"
        },
    )
    num_levels: int | None = field(
        default=None,
        metadata={
            "help": "grey levels of the data, for the discretized decoder and dequantization; "
            "none: 17 for the bundled digits, else 256"
        },
    )

    def __post_init__(self) -> None:
        if isinstance(self.path, Path):
            object.__setattr__(self, "path", str(self.path))
        if isinstance(self.image_size, list):
            object.__setattr__(self, "image_size", tuple(self.image_size))
        _check_source(self)
        _check_image_options(self)
        _check_toy_options(self)
        _check_split_options(self)
        _check_levels(self)

    @property
    def levels(self) -> int:
        """Grey levels of the data: ``num_levels``, or the source's (the digits 17, else 256)."""
        if self.num_levels is not None:
            return self.num_levels
        return NATIVE_LEVELS.get(self.source, 256)

    @property
    def image_hw(self) -> tuple[int, int] | None:
        """image_size as (H, W), or None."""
        if self.image_size is None:
            return None
        if isinstance(self.image_size, int):
            return (self.image_size, self.image_size)
        return (int(self.image_size[0]), int(self.image_size[1]))


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_source(cfg: DataConfig) -> None:
    if cfg.source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {cfg.source!r}")
    if cfg.path is not None and not isinstance(cfg.path, str):
        raise ValueError(f"path must be a string or None, got {type(cfg.path).__name__}")
    if cfg.source in _NEEDS_PATH and not cfg.path:
        raise ValueError(f"path is required for source={cfg.source!r}")
    if cfg.array_key is not None and cfg.source != "array":
        raise ValueError(f"array_key applies only to source='array', not {cfg.source!r}")


def _check_image_options(cfg: DataConfig) -> None:
    size = cfg.image_size
    if size is not None:
        ok = _is_int(size) and size > 0
        if isinstance(size, tuple):
            ok = len(size) == 2 and all(_is_int(s) and s > 0 for s in size)
        if not ok:
            raise ValueError(f"image_size must be a positive int or (H, W), got {size!r}")
    if cfg.source == "folder" and size is None:
        raise ValueError("image_size is required for source='folder'")
    if cfg.source == "toy2d" and size is not None:
        raise ValueError("image_size does not apply to source='toy2d'")
    if cfg.channels is not None:
        if cfg.channels not in CHANNEL_COUNTS or not _is_int(cfg.channels):
            raise ValueError(f"channels must be one of {CHANNEL_COUNTS}, got {cfg.channels!r}")
        if cfg.source != "folder":
            raise ValueError(f"channels applies only to source='folder', not {cfg.source!r}")
    if not isinstance(cfg.hflip, bool):
        raise ValueError(f"hflip must be a bool, got {cfg.hflip!r}")
    if cfg.hflip and cfg.source == "toy2d":
        raise ValueError("hflip applies to images, not to source='toy2d'")
    if not isinstance(cfg.labels_from_subfolders, bool):
        raise ValueError(f"labels_from_subfolders must be a bool, got {cfg.labels_from_subfolders}")
    if not isinstance(cfg.skip_bad_files, bool):
        raise ValueError(f"skip_bad_files must be a bool, got {cfg.skip_bad_files!r}")
    if cfg.skip_bad_files and cfg.source != "folder":
        raise ValueError(f"skip_bad_files applies only to 'folder', not {cfg.source!r}")
    if cfg.labels_from_subfolders and cfg.source != "folder":
        raise ValueError(f"labels_from_subfolders applies only to 'folder', not {cfg.source!r}")


def _check_toy_options(cfg: DataConfig) -> None:
    if cfg.toy not in TOY_NAMES:
        raise ValueError(f"toy must be one of {TOY_NAMES}, got {cfg.toy!r}")
    if not _is_int(cfg.toy_size) or cfg.toy_size < 1:
        raise ValueError(f"toy_size must be a positive int, got {cfg.toy_size!r}")


def _check_split_options(cfg: DataConfig) -> None:
    fraction = cfg.heldout_fraction
    if not isinstance(fraction, (int, float)) or isinstance(fraction, bool):
        raise ValueError(f"heldout_fraction must be a number, got {fraction!r}")
    if not (math.isfinite(fraction) and 0.0 <= fraction < 1.0):
        raise ValueError(f"heldout_fraction must be in [0, 1), got {fraction!r}")
    if not _is_int(cfg.seed) or cfg.seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {cfg.seed!r}")


def _check_levels(cfg: DataConfig) -> None:
    if cfg.num_levels is not None and (not _is_int(cfg.num_levels) or cfg.num_levels < 2):
        raise ValueError(f"num_levels must be an int >= 2 or None, got {cfg.num_levels!r}")
