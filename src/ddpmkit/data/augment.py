"""Batch augmentation: mirrored images where a mask says (the trainer draws it from its seeded
generator, so flips are reproducible)."""

from __future__ import annotations

import torch
from torch import Tensor


def hflip_batch(x: Tensor, flip: Tensor) -> Tensor:
    """Mirror the images of x (B, C, H, W) left-right where the (B,) mask ``flip`` is True.

    The caller draws the mask (the trainer: one uniform per image from its seeded generator, < 1/2),
    so flips are reproducible. Returns a new tensor; x is not modified.
    """
    if x.ndim != 4:
        raise ValueError(f"hflip_batch expects images (B, C, H, W), got shape {tuple(x.shape)}")
    if flip.shape != (x.shape[0],):
        raise ValueError(
            f"hflip_batch: a mask of {x.shape[0]} flags, got shape {tuple(flip.shape)}"
        )
    return torch.where(flip.to(x.device)[:, None, None, None], x.flip(-1), x)
