"""Bits/dim of data under a loaded model: which data (the run's, a named source, a file, a folder or
a tensor), encoded for a latent model, shared between the processes of a torchrun."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import cast

import torch
from torch import Tensor
from torch.utils.data import Dataset, Subset, TensorDataset

from ddpmkit.core.schedules import ReverseVariance
from ddpmkit.data import DataConfig, dataset_size, load_data
from ddpmkit.data.config import SOURCES
from ddpmkit.likelihood.report import NLLMethod, NLLReport, NLLValues, nll_report, nll_values
from ddpmkit.progress import ProgressCallback
from ddpmkit.storage.model import TrainedModel
from ddpmkit.training.distributed import Processes
from ddpmkit.training.latents import encode_dataset

ImageData = str | Path | Tensor | None
"""Data to evaluate: None (the run's), a source name, a folder or array file, or a tensor."""
Items = Dataset[tuple[Tensor, Tensor]]


def measure_likelihood(
    model: TrainedModel,
    data: ImageData,
    method: NLLMethod,
    *,
    num_samples: int,
    batch_size: int,
    split: str = "heldout",
    num_levels: int | None = None,
    variance: ReverseVariance = "auto",
    seed: int = 0,
    progress: ProgressCallback | None = None,
    processes: Processes | None = None,
) -> NLLReport:
    """Bits/dim of the first ``num_samples`` items of ``data`` (see ``Model.likelihood``); each
    process evaluates its block of batches, each batch's noise seeded by its index, so the
    values are those of one process, bit for bit."""
    processes = processes or Processes()
    dataset, levels = likelihood_data(model, data, split, num_samples)
    count = min(num_samples, dataset_size(dataset))
    batches = -(-count // batch_size)
    if batches < processes.world:
        raise ValueError(
            f"num_samples {count} in batches of batch_size {batch_size} make {batches} "
            f"batch(es), fewer than the {processes.world} processes"
        )
    processes.start(model.device)
    start = time.perf_counter()
    mine = processes.block(batches)
    values = nll_values(
        model.denoiser, model.schedule, dataset, method, batch_size=batch_size, batches=mine,
        num_items=count, num_levels=num_levels or levels, variance=variance, seed=seed,
        progress=progress, continuous=model.autoencoder is not None,
    )  # fmt: skip
    if processes.distributed:
        rows = range(mine.start * batch_size, min(mine.stop * batch_size, count))
        values = _joined(values, rows, count, model.device, processes)
    return nll_report(method, values, time.perf_counter() - start)


def likelihood_data(
    model: TrainedModel, data: ImageData, split: str, num_samples: int
) -> tuple[Items, int]:
    """The items to evaluate (a latent model's encoded) and the data's quantization levels."""
    if isinstance(data, Tensor):
        if data.ndim != len(model.shape) + 1:
            raise ValueError(f"data: expected a batch of {model.shape} items, got {data.shape}")
        labels = torch.zeros(len(data), dtype=torch.long)
        dataset = cast(Items, TensorDataset(data.float(), labels))
        levels = 256
    else:
        config, split = data_config(model, data, split)
        dataset, levels = load_data(config, split).dataset, config.levels
    if model.autoencoder is not None:  # the density of the latents, which the model learned
        count = min(num_samples, dataset_size(dataset))
        dataset = encode_dataset(model.autoencoder, Subset(dataset, range(count)))
    if tuple(dataset[0][0].shape) != tuple(model.shape):
        raise ValueError(
            f"data {_name(data)}: items have shape {tuple(dataset[0][0].shape)} but the model "
            f"was trained on {model.shape}"
        )
    return dataset, levels


def data_config(model: TrainedModel, data: str | Path | None, split: str) -> tuple[DataConfig, str]:
    """The data a name points at, and the split to read: the run's own, a named source, or a
    file or folder (all of its items, at the model's size)."""
    trained_on = model.training_data
    if data is None:
        if trained_on is None:
            raise ValueError("this model's training data are unknown: name the data to evaluate")
        return trained_on, split
    if str(data) in SOURCES:
        base = trained_on or DataConfig()
        return dataclasses.replace(base, source=str(data), path=None, num_levels=None), split
    path = Path(data)
    if not path.exists():
        raise FileNotFoundError(f"data {data}: no such file or folder (nor a source {SOURCES})")
    if path.is_dir():
        shape = model.shape
        return DataConfig(
            source="folder", path=str(data), image_size=(shape[1], shape[2]), channels=shape[0],
            heldout_fraction=0.0,
        ), "train"  # fmt: skip
    return DataConfig(source="array", path=str(data), heldout_fraction=0.0), "train"


def _joined(
    mine: NLLValues, rows: range, count: int, device: torch.device, processes: Processes
) -> NLLValues:
    """Every process's per-item values, in item order, on every process."""

    def join(part: Tensor | None) -> Tensor | None:
        return None if part is None else processes.join(part, rows, count, device)

    bits = processes.join(mine.bits, rows, count, device)
    return NLLValues(bits, join(mine.terms), join(mine.prior), processes.total(mine.nfe, device))


def _name(data: ImageData) -> str:
    return "tensor" if isinstance(data, Tensor) else str(data)
