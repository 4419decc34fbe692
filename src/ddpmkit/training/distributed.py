"""Data-parallel training across processes started by ``torchrun`` (PyTorch's distributed engine).

Every process holds the whole model and sees rows ``rows`` of each global batch; gradients are
averaged by ``DistributedDataParallel`` (NCCL on GPUs, gloo on CPUs). Randomness is drawn for the
whole batch from one identically seeded generator (``core.randomness.BatchShard``), so N processes
compute what one process computes on the same global batch, up to the order of float sums.
"""

from __future__ import annotations

import os
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class Processes:
    """This process's place among ``world`` processes (one process: rank 0 of 1)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @classmethod
    def from_environment(cls) -> Processes:
        """torchrun's ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; a single process without them."""
        return cls(
            int(os.environ.get("RANK", 0)),
            int(os.environ.get("WORLD_SIZE", 1)),
            int(os.environ.get("LOCAL_RANK", 0)),
        )

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        """The process that writes logs, checkpoints and samples."""
        return self.rank == 0

    def device(self, device: torch.device) -> torch.device:
        """A CUDA device per local process; the CPU is shared."""
        if self.distributed and device.type == "cuda":
            return torch.device("cuda", self.local_rank)
        return device

    def device_name(self, device: str) -> str:
        """A ``--device`` flag for this process: its own GPU under torchrun when CUDA is meant."""
        if self.distributed and device in ("auto", "cuda") and torch.cuda.is_available():
            return f"cuda:{self.local_rank}"
        return device

    def start(self, device: torch.device) -> None:
        """Join the process group: NCCL for CUDA, gloo for the CPU."""
        if self.distributed and not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")

    def rows(self, batch_size: int, parts: int = 1) -> slice:
        """This process's contiguous rows of a global batch (fed in ``parts`` micro-batches)."""
        if batch_size % (self.world * parts):
            raise ValueError(
                f"train.batch_size = {batch_size} is the global batch; it must be divisible by "
                f"the {self.world} processes × train.grad_accum = {parts} micro-batches"
            )
        size = batch_size // self.world
        return slice(self.rank * size, (self.rank + 1) * size)

    def block(self, count: int) -> range:
        """This process's contiguous block of ``count`` items, the blocks in rank order and as
        even as can be (none empty when count >= world)."""
        return range(self.rank * count // self.world, (self.rank + 1) * count // self.world)

    def join(
        self, part: torch.Tensor, rows: range, total: int, device: torch.device
    ) -> torch.Tensor:
        """The (total, …) tensor of which each process computed its ``rows``: a sum over
        processes in which every row has one nonzero term, so it is exact."""
        if not self.distributed:
            return part
        whole = part.new_zeros((total, *part.shape[1:]), device=device)
        whole[rows.start : rows.stop] = part.to(device)
        dist.all_reduce(whole)
        return whole.to(part.device)

    def total(self, value: int, device: torch.device) -> int:
        """The sum of every process's ``value``."""
        if not self.distributed:
            return value
        summed = torch.tensor([value], dtype=torch.int64, device=device)
        dist.all_reduce(summed)
        return int(summed)

    def slowest(self, value: float, device: torch.device) -> float:
        """The largest of every process's ``value`` (so that all plan with the same figure)."""
        if not self.distributed:
            return value
        largest = torch.tensor([value], dtype=torch.float64, device=device)
        dist.all_reduce(largest, op=dist.ReduceOp.MAX)
        return float(largest)

    def wrap(self, network: nn.Module, device: torch.device) -> nn.Module:
        """``DistributedDataParallel(network)`` across processes; the network itself alone."""
        if not self.distributed:
            return network
        ids = [device.index] if device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(network, device_ids=ids)

    def accumulating(self, parallel: nn.Module, last: bool) -> AbstractContextManager[object]:
        """Across processes, gradients of all but a step's ``last`` micro-batch are kept local
        (``no_sync``): DistributedDataParallel averages the accumulated sum once."""
        if self.distributed and not last:
            assert isinstance(parallel, nn.parallel.DistributedDataParallel)
            return parallel.no_sync()
        return nullcontext()

    def barrier(self) -> None:
        """Wait until every process arrives (e.g. until the main one has written a checkpoint)."""
        if self.distributed:
            dist.barrier()
