"""MNIST and CIFAR-10 through torchvision (optional: pip install ddpmkit[vision]).

Files already under root are used as they are; only when torchvision reports them absent (or
corrupted) is a download tried. 'train' is torchvision's training set, 'heldout' its test set.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any, cast

import numpy as np

TORCHVISION_SETS = {"mnist": "MNIST", "cifar10": "CIFAR10"}
"""DataConfig.source -> torchvision.datasets class name."""


def _datasets_module(name: str) -> ModuleType:
    try:
        from torchvision import datasets
    except ImportError as err:
        raise ImportError(
            f"source {name!r} needs torchvision; install it with: pip install ddpmkit[vision]"
        ) from err
    return cast(ModuleType, datasets)


def open_torchvision_set(name: str, root: str | Path, split: str) -> Any:
    """The torchvision dataset object, downloading only if its files are absent under root."""
    if name not in TORCHVISION_SETS:
        raise ValueError(f"unknown torchvision set {name!r}; choose from {list(TORCHVISION_SETS)}")
    if split not in ("train", "heldout"):
        raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")
    cls = getattr(_datasets_module(name), TORCHVISION_SETS[name])
    train = split == "train"
    try:
        return cls(root=str(root), train=train, download=False)
    except RuntimeError:
        pass  # torchvision raises RuntimeError when the files are absent or corrupted
    try:
        return cls(root=str(root), train=train, download=True)
    except (OSError, RuntimeError, ValueError) as err:
        raise RuntimeError(
            f"{name} files are missing or corrupted under {root} and the download failed: {err}; "
            f"place torchvision's {TORCHVISION_SETS[name]} files there or allow network access"
        ) from err


def torchvision_arrays(name: str, root: str | Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (N, C, H, W) and int64 labels (N,) of MNIST or CIFAR-10."""
    dataset = open_torchvision_set(name, root, split)
    data = np.asarray(dataset.data)  # MNIST: (N, 28, 28) tensor; CIFAR-10: (N, 32, 32, 3) array
    if data.dtype != np.uint8 or data.ndim not in (3, 4):
        raise ValueError(f"{name} under {root}: unexpected data {data.dtype} {data.shape}")
    images = data[:, None] if data.ndim == 3 else data.transpose(0, 3, 1, 2)
    labels = np.asarray(dataset.targets, dtype=np.int64)
    return np.ascontiguousarray(images), labels
