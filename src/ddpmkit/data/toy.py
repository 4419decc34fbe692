"""2-D toy distributions (two moons, swiss roll, 8 Gaussians, checkerboard) at roughly unit scale.

Each sampler takes a point count and a ``torch.Generator`` and returns an (N, 2) float32 tensor.
The scaling uses fixed constants (never statistics of the draw), so two draws share one scale.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

ToySampler = Callable[[int, torch.Generator], Tensor]


def _normal(n: int, generator: torch.Generator) -> Tensor:
    return torch.randn(n, 2, generator=generator, dtype=torch.float64)


def _uniform(n: int, generator: torch.Generator) -> Tensor:
    return torch.rand(n, generator=generator, dtype=torch.float64)


def moons(n: int, generator: torch.Generator, noise: float = 0.1) -> Tensor:
    """Two interleaving half circles (as scikit-learn's make_moons), centered, isotropic scale."""
    t = _uniform(n, generator) * math.pi
    outer = _uniform(n, generator) < 0.5
    x = torch.where(outer, torch.cos(t), 1.0 - torch.cos(t))
    y = torch.where(outer, torch.sin(t), 0.5 - torch.sin(t))
    points = torch.stack([x, y], dim=1) + noise * _normal(n, generator)
    # empirical mean (0.5, 0.25) and root-mean per-axis variance 0.712 of the unscaled moons
    return ((points - torch.tensor([0.5, 0.25], dtype=torch.float64)) / 0.712).float()


def swiss_roll(n: int, generator: torch.Generator, noise: float = 0.5) -> Tensor:
    """A spiral (t cos t, t sin t), t in [1.5π, 4.5π]: scikit-learn's make_swiss_roll in (x, z)."""
    t = 1.5 * math.pi * (1.0 + 2.0 * _uniform(n, generator))
    points = torch.stack([t * torch.cos(t), t * torch.sin(t)], dim=1)
    points = points + noise * _normal(n, generator)
    # empirical mean (2.0, 0.2) and root-mean per-axis variance 6.8 of the unscaled roll
    return ((points - torch.tensor([2.0, 0.2], dtype=torch.float64)) / 6.8).float()


def eight_gaussians(n: int, generator: torch.Generator, std: float = 0.1) -> Tensor:
    """Eight Gaussians on a circle; radius chosen so each coordinate has mean 0 and variance 1."""
    radius = math.sqrt(2.0 * (1.0 - std**2))  # per-axis variance radius²/2 + std² = 1
    k = torch.randint(0, 8, (n,), generator=generator).to(torch.float64)
    angle = k * (math.pi / 4.0)
    centers = radius * torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)
    return (centers + std * _normal(n, generator)).float()


def checkerboard(n: int, generator: torch.Generator) -> Tensor:
    """Uniform on the 8 dark squares of a 4×4 board on [-2, 2]², scaled to unit variance."""
    x = 4.0 * _uniform(n, generator) - 2.0
    row = torch.randint(0, 2, (n,), generator=generator).to(torch.float64)
    y = _uniform(n, generator) - 2.0 * row + torch.remainder(torch.floor(x), 2.0)
    # both coordinates are uniform on [-2, 2]: variance 4/3
    return (torch.stack([x, y], dim=1) / math.sqrt(4.0 / 3.0)).float()


TOY_DISTRIBUTIONS: dict[str, ToySampler] = {
    "moons": moons,
    "swiss_roll": swiss_roll,
    "8gaussians": eight_gaussians,
    "checkerboard": checkerboard,
}
"""Name -> sampler; the names DataConfig.toy accepts."""


def sample_toy(name: str, n: int, seed: int) -> Tensor:
    """(n, 2) float32 points from the named toy distribution, determined by seed."""
    if name not in TOY_DISTRIBUTIONS:
        raise ValueError(f"unknown toy distribution {name!r}; one of {list(TOY_DISTRIBUTIONS)}")
    if n < 1:
        raise ValueError(f"toy sample size must be positive, got {n}")
    generator = torch.Generator().manual_seed(seed)
    return TOY_DISTRIBUTIONS[name](n, generator)
