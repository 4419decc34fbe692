"""load_data: a DataConfig and a split name -> the dataset, its per-sample shape and label count."""

from __future__ import annotations

from collections.abc import Callable, Sized
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch
from torch.utils.data import Dataset

from ddpmkit.data.arrays import ArrayDataset, array_dataset
from ddpmkit.data.config import DataConfig
from ddpmkit.data.images import ImageFolderDataset
from ddpmkit.data.torchvision_sets import torchvision_arrays
from ddpmkit.data.toy import sample_toy
from ddpmkit.memory import require_memory

SPLITS = ("train", "heldout")
DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
CIFAR10_NAMES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip


@dataclass
class LoadedData:
    """A dataset of (x, label) pairs and what a model needs to know about it."""

    # yields (x float32 in [-1, 1], label int64 scalar, -1 when unlabelled)
    dataset: Dataset[tuple[torch.Tensor, torch.Tensor]]
    shape: tuple[int, ...]  # per-sample shape: (C, H, W) for images, (D,) for vectors
    num_classes: int | None  # None when the data has no labels
    kind: str  # "image" or "vector"
    class_names: tuple[str, ...] | None = None  # a name per label; None: the labels' numbers


def split_indices(n: int, fraction: float, seed: int, split: str) -> np.ndarray:
    """Sorted indices of split among n items: a seeded permutation's first round(n·fraction) are
    held out (at least 1 and at most n - 1 when fraction > 0); the rest are for training."""
    held = 0 if fraction == 0 else min(max(round(n * fraction), 1), n - 1)
    if split == "heldout" and held == 0:
        raise ValueError(f"no held-out split: heldout_fraction={fraction} of {n} items")
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[:held] if split == "heldout" else order[held:])


def _load_digits(config: DataConfig, split: str) -> LoadedData:
    from ddpmkit.data.digits import digits_arrays  # scikit-learn import deferred until needed

    images, labels = digits_arrays(split)
    dataset = ArrayDataset(images, labels, "signed", config.image_hw)
    return LoadedData(dataset, dataset.shape, 10, "image", DIGIT_NAMES)


def _load_toy(config: DataConfig, split: str) -> LoadedData:
    seed = config.seed if split == "train" else config.seed + 1  # independent held-out draw
    # the points and the generator's temporaries: a few float64 copies of (N, 2)
    require_memory(64 * config.toy_size, f"data.toy_size = {config.toy_size:,} points",
                   torch.device("cpu"), "lower data.toy_size")  # fmt: skip
    dataset = ArrayDataset(sample_toy(config.toy, config.toy_size, seed), None, "raw")
    return LoadedData(dataset, (2,), None, "vector")


def _load_folder(config: DataConfig, split: str) -> LoadedData:
    assert config.path is not None and config.image_hw is not None  # checked by DataConfig
    full = ImageFolderDataset(
        config.path,
        config.image_hw,
        config.channels or 3,
        config.labels_from_subfolders,
        skip_bad_files=config.skip_bad_files,
    )
    dataset = full.subset(split_indices(len(full), config.heldout_fraction, config.seed, split))
    if not config.labels_from_subfolders:
        return LoadedData(dataset, full.shape, None, "image")
    return LoadedData(dataset, full.shape, len(full.classes), "image", tuple(full.classes))


def _num_classes(labels: torch.Tensor | None) -> int | None:
    return None if labels is None or len(labels) == 0 else int(labels.max()) + 1


def _load_array(config: DataConfig, split: str) -> LoadedData:
    assert config.path is not None  # checked by DataConfig
    full = array_dataset(config.path, config.array_key, config.image_hw)
    dataset = full.subset(split_indices(len(full), config.heldout_fraction, config.seed, split))
    kind = "image" if full.data.ndim == 4 else "vector"
    return LoadedData(dataset, full.shape, _num_classes(full.labels), kind)


def _load_torchvision(config: DataConfig, split: str) -> LoadedData:
    assert config.path is not None  # checked by DataConfig
    images, labels = torchvision_arrays(config.source, config.path, split)
    data, targets = torch.from_numpy(images), torch.from_numpy(labels)
    dataset = ArrayDataset(data, targets, "uint8", config.image_hw)
    names = DIGIT_NAMES if config.source == "mnist" else CIFAR10_NAMES
    return LoadedData(dataset, dataset.shape, 10, "image", names)


_LOADERS: dict[str, Callable[[DataConfig, str], LoadedData]] = {
    "digits": _load_digits,
    "toy2d": _load_toy,
    "folder": _load_folder,
    "array": _load_array,
    "mnist": _load_torchvision,
    "cifar10": _load_torchvision,
}


def load_data(config: DataConfig, split: str = "train") -> LoadedData:
    """The 'train' or 'heldout' split of the data config describes.

    digits: the fixed 1500/297 split of data/digits.py; toy2d: held-out is a second draw with
    seed + 1; folder/array: a seeded split by heldout_fraction; mnist/cifar10: train/test sets.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return _LOADERS[config.source](config, split)


def dataset_size(dataset: Dataset[Any]) -> int:
    """The number of items of a map-style dataset (torch's Dataset declares no ``__len__``, but
    every dataset of ddpmkit has one)."""
    return len(cast(Sized, dataset))


def stack_items(
    dataset: Dataset[tuple[torch.Tensor, torch.Tensor]], count: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``count`` (all by default) (x, label) pairs of a dataset as two stacked tensors."""
    items = [dataset[i] for i in range(dataset_size(dataset) if count is None else count)]
    return torch.stack([x for x, _ in items]), torch.stack([torch.as_tensor(y) for _, y in items])
