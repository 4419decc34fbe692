"""The learning-rate schedule: linear warm-up, then constant or a cosine decay to zero."""

from __future__ import annotations

import math
from typing import Literal

LrDecay = Literal["constant", "cosine"]


def learning_rate(
    step: int, peak: float, warmup_steps: int, decay: LrDecay = "constant", steps: int = 0
) -> float:
    """Linear warm-up to ``peak`` over ``warmup_steps`` (Ho et al. 2020, App. B), then constant
    or a half cosine down to 0 at step ``steps`` (Loshchilov & Hutter 2017, eq. 5)."""
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    if decay == "constant":
        return peak
    progress = min(1.0, (step - warmup_steps) / max(1, steps - warmup_steps))
    return peak * 0.5 * (1.0 + math.cos(math.pi * progress))
