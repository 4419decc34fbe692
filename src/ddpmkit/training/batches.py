"""The order in which training sees the data: a pure function of the seed and the step.

Epoch e is a permutation drawn from a generator seeded by (seed, e); the batch of step s is a
slice of it. Resuming at step s therefore continues the data order exactly, with no state to save.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler


class StepBatches(Sampler[list[int]]):
    """Index lists for steps ``start_step``, ``start_step + 1``, … (incomplete batches dropped);
    with ``rows``, this process's part of each global batch."""

    def __init__(
        self,
        dataset_size: int,
        batch_size: int,
        seed: int,
        start_step: int = 0,
        rows: slice = slice(None),
    ) -> None:
        if dataset_size < batch_size:
            raise ValueError(
                f"the dataset has {dataset_size} samples, fewer than train.batch_size = {batch_size}"
            )
        self.dataset_size, self.batch_size = dataset_size, batch_size
        self.seed, self.start_step, self.rows = seed, start_step, rows
        self.batches_per_epoch = dataset_size // batch_size

    def epoch_permutation(self, epoch: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.dataset_size, generator=generator)

    def __iter__(self) -> Iterator[list[int]]:
        step = self.start_step
        while True:
            epoch, position = divmod(step, self.batches_per_epoch)
            order = self.epoch_permutation(epoch)
            for i in range(position, self.batches_per_epoch):
                batch = order[i * self.batch_size : (i + 1) * self.batch_size]
                yield batch[self.rows].tolist()
            step = (epoch + 1) * self.batches_per_epoch


def batch_stream(
    dataset: Dataset[tuple[Tensor, Tensor]],
    order: StepBatches,
    num_workers: int = 0,
    pin_memory: bool = False,
) -> Iterator[tuple[Tensor, Tensor]]:
    """(x_0, labels) batches in ``order``: sliced and converted in one go when the dataset holds
    its items in memory (it has ``batch(indices)``), else read item by item through a DataLoader
    with ``num_workers`` processes (pinned memory for a fast copy to a GPU)."""
    batch = getattr(dataset, "batch", None)
    if batch is not None:
        for indices in order:
            yield batch(indices)
        return
    yield from DataLoader(
        dataset,
        batch_sampler=order,
        num_workers=num_workers,
        pin_memory=pin_memory,
        generator=torch.Generator(),  # its own seed draw must not advance the global RNG
    )
