"""Explicit randomness: one generator for a batch, one per sample (EDM's per-seed noise), or a
process's rows of a batch split over processes.

With ``PerSampleGenerator`` every sample draws its noise from its own seeded generator, so a
sample depends only on its seed, never on which batch it was drawn in or how large that was.
With ``BatchShard`` each process draws the whole batch's randomness and keeps its own rows, so
distributed training draws for every sample what one process would have drawn; micro-batches of
one step (gradient accumulation) share those whole-batch draws instead of drawing again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor


class PerSampleGenerator:
    """One ``torch.Generator`` per sample, seeded ``seeds[i]`` for row i of every draw.

    Args:
        seeds: one integer seed per row of the batch; a draw must have ``len(seeds)`` rows.
        device: where the generators live and draw; the rows are then moved to the device and
            dtype a draw asks for, so a seed gives the same noise whatever device that is.
    """

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


class BatchShard:
    """Rows ``rows`` of a batch of ``total``: every draw is made for the whole batch from the
    shared, identically seeded ``generator``, and only these rows are kept.

    With a ``shared`` list, the micro-batches of one step reuse the whole-batch draws: the first
    to make its k-th draw stores it there, the others read it, so the step consumes the
    generator exactly as one whole-batch step does.
    """

    def __init__(
        self,
        generator: torch.Generator,
        rows: slice,
        total: int,
        shared: list[Tensor] | None = None,
    ) -> None:
        self.generator, self.rows, self.total = generator, rows, total
        self.size = len(range(total)[rows])
        self.shared = shared
        self._draws = 0

    @property
    def device(self) -> torch.device:
        return self.generator.device

    def whole(self, shape: Sequence[int]) -> tuple[int, ...]:
        """The shape of the whole batch's draw for this process's ``shape``."""
        if shape[0] != self.size:
            raise ValueError(f"a draw of {shape[0]} rows from a shard of {self.size}")
        return (self.total, *shape[1:])

    def draw(self, whole_batch: Callable[[torch.Generator], Tensor]) -> Tensor:
        """These rows of ``whole_batch(generator)``, drawn once per step when draws are shared."""
        index, self._draws = self._draws, self._draws + 1
        if self.shared is None:
            return whole_batch(self.generator)[self.rows]
        if index == len(self.shared):
            self.shared.append(whole_batch(self.generator))
        return self.shared[index][self.rows]


Generator = torch.Generator | PerSampleGenerator | BatchShard | None


def rand_rows(count: int, generator: torch.Generator | BatchShard) -> Tensor:
    """(count,) uniforms on [0, 1) on the generator's device."""
    if isinstance(generator, BatchShard):
        return generator.draw(lambda g: rand_rows(generator.total, g))
    return torch.rand(count, generator=generator, device=generator.device)


def randint_rows(high: int, count: int, generator: torch.Generator | BatchShard) -> Tensor:
    """(count,) integers uniform on {0, …, high - 1} on the generator's device."""
    if isinstance(generator, BatchShard):
        return generator.draw(lambda g: randint_rows(high, generator.total, g))
    return torch.randint(0, high, (count,), generator=generator, device=generator.device)


def multinomial_rows(p: Tensor, count: int, generator: torch.Generator | BatchShard) -> Tensor:
    """(count,) indices drawn with replacement with probabilities ``p``."""
    if isinstance(generator, BatchShard):
        return generator.draw(lambda g: multinomial_rows(p, generator.total, g))
    return torch.multinomial(p.to(generator.device), count, replacement=True, generator=generator)


def randn(
    shape: Sequence[int],
    generator: Generator,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> Tensor:
    """Standard normal noise drawn from ``generator`` (the global RNG only when it is None)."""
    if isinstance(generator, PerSampleGenerator):
        return generator.randn(shape, dtype, torch.device(device))
    if isinstance(generator, BatchShard):
        whole = generator.whole(shape)
        return generator.draw(lambda g: randn(whole, g, dtype, device))
    gen_device = generator.device if generator is not None else device
    return torch.randn(tuple(shape), generator=generator, device=gen_device, dtype=dtype).to(device)


def randn_like(x: Tensor, generator: Generator) -> Tensor:
    """Standard normal noise shaped like x."""
    return randn(x.shape, generator, x.dtype, x.device)
