"""Exponential moving average of the weights, used for sampling (Ho et al. 2020, Appendix B)."""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn


def warmup_decay(n: int) -> float:
    """(1+n)/(10+n), the warm-up decay of the n-th update: its half-life grows with the run,
    ≈ 7.7% of the updates so far (a power-function EMA, Karras et al. 2024 (EDM2), §3.1)."""
    return (1 + n) / (10 + n)


class EMA:
    """θ_EMA ← d·θ_EMA + (1-d)·θ after every optimizer step.

    With warm-up the n-th update uses d = min(decay, (1+n)/(10+n)), so early averages are not
    dominated by the random initialisation (as diffusers' EMAModel and TensorFlow's EMA do).
    """

    def __init__(self, model: nn.Module, decay: float, warmup: bool = True) -> None:
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay = decay
        self.warmup = warmup
        self.num_updates = 0

    def current_decay(self) -> float:
        """d for the next update."""
        if not self.warmup:
            return self.decay
        return min(self.decay, warmup_decay(self.num_updates + 1))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """One averaging step towards ``model``'s current weights; buffers are copied."""
        weight = 1.0 - self.current_decay()
        ema_params: list[Tensor] = list(self.model.parameters())
        torch._foreach_lerp_(ema_params, [p.detach() for p in model.parameters()], weight)
        for ema_buffer, buffer in zip(self.model.buffers(), model.buffers(), strict=True):
            ema_buffer.copy_(buffer)
        self.num_updates += 1
