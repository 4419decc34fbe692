"""Explicit randomness: one generator for a batch, or one per sample (EDM's per-seed noise).

With ``PerSampleGenerator`` every sample draws its noise from its own seeded generator, so a
sample depends only on its seed, never on which batch it was drawn in or how large that was.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


class PerSampleGenerator:
    """One ``torch.Generator`` per sample, seeded ``seeds[i]`` for row i of every draw."""

    def __init__(self, seeds: Sequence[int], device: torch.device | str = "cpu") -> None:
        self.generators = [torch.Generator(device).manual_seed(int(s)) for s in seeds]

    def randn(self, shape: Sequence[int], dtype: torch.dtype, device: torch.device) -> Tensor:
        if shape[0] != len(self.generators):
            raise ValueError(
                f"batch of {shape[0]} rows but {len(self.generators)} seeded generators"
            )
        rows = [
            torch.randn(tuple(shape[1:]), generator=g, device=g.device) for g in self.generators
        ]
        return torch.stack(rows).to(device=device, dtype=dtype)


Generator = torch.Generator | PerSampleGenerator | None


def randn(
    shape: Sequence[int],
    generator: Generator,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> Tensor:
    """Standard normal noise drawn from ``generator`` (the global RNG only when it is None)."""
    if isinstance(generator, PerSampleGenerator):
        return generator.randn(shape, dtype, torch.device(device))
    gen_device = generator.device if generator is not None else device
    return torch.randn(tuple(shape), generator=generator, device=gen_device, dtype=dtype).to(device)


def randn_like(x: Tensor, generator: Generator) -> Tensor:
    """Standard normal noise shaped like x."""
    return randn(x.shape, generator, x.dtype, x.device)
