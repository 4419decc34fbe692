"""Images for the standard metrics: generated or read from files, a reference from a folder, an
array file, a built-in source or precomputed statistics, and a cache of reference features.

Features of a reference are cached as plain arrays (.npz) under a key made of what the
reference is (source or path, split, item count, resolution) and of the Inception weights, so a
second evaluation against the same data reads them instead of recomputing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from ddpmkit.data import DataConfig, ImageFolderDataset, array_dataset, dataset_size, load_data
from ddpmkit.data.config import SOURCES
from ddpmkit.evaluation.fidelity import InceptionFeatures, Statistics

CACHE_ENVIRONMENT = "DDPMKIT_CACHE"
"""Overrides the cache folder (default: ~/.cache/ddpmkit)."""


@dataclass(frozen=True)
class ImageSet:
    """Images in [-1, 1] as a dataset of (x, label) items, and what they are (the cache key)."""

    dataset: Dataset[tuple[Tensor, ...]]
    count: int
    identity: str


def uint8_batches(images: ImageSet, batch_size: int) -> Iterator[Tensor]:
    """The images as uint8 (B, C, H, W) batches, [-1, 1] mapped to 0 … 255."""
    for start in range(0, images.count, batch_size):
        stop = min(start + batch_size, images.count)
        x = torch.stack([images.dataset[i][0] for i in range(start, stop)])
        yield ((x + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)


def read_statistics(path: Path) -> Statistics | None:
    """Precomputed FID statistics (an .npz with ``mu`` and ``sigma``, as pytorch-fid and
    torch-fidelity write them), or None for any other file."""
    if path.suffix.lower() != ".npz" or not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as archive:
        if not {"mu", "sigma"} <= set(archive.files):
            return None
        mu, sigma = archive["mu"].astype(np.float64), archive["sigma"].astype(np.float64)
    if mu.ndim != 1 or sigma.shape != (len(mu), len(mu)):
        raise ValueError(f"{path}: mu {mu.shape} and sigma {sigma.shape} are not (D,) and (D, D)")
    return Statistics(mu, sigma)


def image_set(
    spec: str, shape: tuple[int, ...], limit: int | None, run_data: DataConfig | None = None
) -> ImageSet:
    """Images named by ``spec``: ``run`` (the run's training data), a source name, an image
    folder (resized to ``shape``) or an .npy/.npz array; the first ``limit`` items."""
    if len(shape) != 3:
        raise ValueError(f"the standard metrics are for images; this model draws {shape}")
    size = (shape[1], shape[2])
    path = Path(spec)
    if spec == "run":
        if run_data is None:
            raise ValueError("this model has no training data of its own; pass --reference")
        dataset, identity = load_data(run_data, "train").dataset, _describe(run_data)
    elif spec in SOURCES:
        config = DataConfig(source=spec)
        dataset, identity = load_data(config, "train").dataset, _describe(config)
    elif path.is_dir():
        dataset = ImageFolderDataset(path, size, channels=3)
        identity = f"folder:{path.resolve()}:{_modified(path)}"
    elif path.is_file():
        dataset = array_dataset(path, image_size=size)
        identity = f"array:{path.resolve()}:{_modified(path)}"
    else:
        raise FileNotFoundError(f"{spec}: no such folder or file (nor a source {SOURCES})")
    available = dataset_size(dataset)
    count = available if limit is None else min(limit, available)
    if count < 2:
        raise ValueError(f"{spec}: {count} image(s); the metrics need at least 2")
    return ImageSet(dataset, count, f"{identity}:{count}:{size[0]}x{size[1]}")


def cache_folder() -> Path:
    return Path(os.environ.get(CACHE_ENVIRONMENT, Path.home() / ".cache" / "ddpmkit")) / "fidelity"


def cached_features(key: str) -> InceptionFeatures | None:
    path = _cache_path(key)
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as archive:
        return InceptionFeatures(archive["pool"], archive["logits"])


def store_features(key: str, features: InceptionFeatures) -> Path:
    path = _cache_path(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial.npz")
    np.savez(partial, pool=features.pool, logits=features.logits, key=np.array(key))
    partial.replace(path)
    return path


def _cache_path(key: str) -> Path:
    return cache_folder() / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.npz"


def _describe(config: DataConfig) -> str:
    fields = {k: v for k, v in dataclasses.asdict(config).items() if v is not None}
    return "data:" + json.dumps(fields, sort_keys=True)


def _modified(path: Path) -> str:
    return str(path.stat().st_mtime_ns)
