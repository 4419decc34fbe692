"""Batch augmentation with an explicit generator (the trainer's deterministic random flips)."""

from __future__ import annotations

import torch
from torch import Tensor


def hflip_batch(x: Tensor, generator: torch.Generator) -> Tensor:
    """Mirror each image of x (B, C, H, W) left-right with probability 1/2, drawn from generator.

    Draws exactly B uniforms from generator (on the generator's device), so a seeded generator
    gives the same flips on every run. Returns a new tensor; x is not modified.
    """
    if x.ndim != 4:
        raise ValueError(f"hflip_batch expects images (B, C, H, W), got shape {tuple(x.shape)}")
    flip = torch.rand(x.shape[0], generator=generator, device=generator.device) < 0.5
    flip = flip.to(x.device)[:, None, None, None]
    return torch.where(flip, x.flip(-1), x)
