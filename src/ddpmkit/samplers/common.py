"""What every sampler shares: its result, the optional trajectory, clipping of x̂_0."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor


@dataclass
class SampleResult:
    """Final samples, the trajectory x_T … x_0 when it was recorded, and the network evaluations."""

    samples: Tensor
    trajectory: list[Tensor] | None
    nfe: int


@dataclass
class Trajectory:
    """States visited by a sampler, kept only when asked for (on the CPU to spare device memory)."""

    states: list[Tensor] | None = field(default=None)

    @classmethod
    def start(cls, x: Tensor, record: bool) -> Trajectory:
        return cls([x.detach().cpu()] if record else None)

    def append(self, x: Tensor) -> None:
        if self.states is not None:
            self.states.append(x.detach().cpu())


def clip_x0(x0_hat: Tensor, clip: tuple[float, float] | None) -> Tensor:
    """x̂_0 clipped to the data range [low, high] when ``clip`` is given (Ho et al. 2020, §3.3)."""
    return x0_hat if clip is None else x0_hat.clamp(*clip)
