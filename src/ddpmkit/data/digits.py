"""scikit-learn's bundled handwritten digits (1,797 images, 8×8, 10 classes), scaled to [-1, 1]."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

HELDOUT_SIZE = 297
"""Held-out images (stratified by class); the remaining 1,500 are for training."""
SPLIT_SEED = 0
"""Fixed seed of the train/held-out split, so every run and test sees the same split."""


def digits_arrays(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, 1, 8, 8) in [-1, 1] and labels (N,) of the 'train' or 'heldout' split."""
    if split not in ("train", "heldout"):
        raise ValueError(f"digits split must be 'train' or 'heldout', got {split!r}")
    bunch = load_digits()
    images = bunch.images.astype(np.float32) / 16.0 * 2.0 - 1.0  # pixel values 0..16 -> [-1, 1]
    labels = bunch.target.astype(np.int64)
    train_idx, heldout_idx = train_test_split(
        np.arange(len(labels)), test_size=HELDOUT_SIZE, random_state=SPLIT_SEED, stratify=labels
    )
    idx = np.sort(train_idx if split == "train" else heldout_idx)
    return torch.from_numpy(images[idx, None]), torch.from_numpy(labels[idx])
