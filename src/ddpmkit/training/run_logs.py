"""Experiment logs beside log.csv: TensorBoard event files (optional) and summary.json.

TensorBoard (``train.tensorboard``, needs the ``tensorboard`` package) receives every log row
(loss overall and per quarter of t, learning rate, gradient norm, held-out bits/dim, skipped
steps), the training throughput in images/s, and every sample grid. ``summary.json`` says what
the run is and where it stands; it is rewritten at the end of every ``fit``.
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ddpmkit.files import write_text_atomically
from ddpmkit.losses import LossOutput


class TensorBoardLog:
    """Scalars and pictures of a run in ``RUN/tensorboard`` (``tensorboard --logdir RUN``)."""

    def __init__(self, folder: Path, batch_size: int) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as error:
            raise ImportError(
                f"train.tensorboard needs the tensorboard package ({error}); install it with "
                "pip install tensorboard, or set train.tensorboard false"
            ) from None
        self.writer = SummaryWriter(str(folder))
        self.batch_size = batch_size
        self._previous: tuple[int, float] | None = None

    def row(self, step: int, values: dict[str, float]) -> None:
        """One row of log.csv as scalars, and images/s since the previous row."""
        for name, value in values.items():
            if name != "seconds":
                self.writer.add_scalar(f"train/{name}", value, step)
        seconds = values.get("seconds")
        if seconds is not None and self._previous is not None:
            last_step, last_seconds = self._previous
            if seconds > last_seconds:
                rate = (step - last_step) * self.batch_size / (seconds - last_seconds)
                self.writer.add_scalar("train/images_per_second", rate, step)
        if seconds is not None:
            self._previous = (step, seconds)

    def picture(self, tag: str, path: Path, step: int) -> None:
        """A PNG the run wrote (a sample grid), as an image at ``step``."""
        pixels = np.asarray(Image.open(path).convert("RGB"))
        self.writer.add_image(tag, pixels, step, dataformats="HWC")

    def close(self) -> None:
        self.writer.close()


def write_summary(path: Path, summary: dict[str, Any]) -> Path:
    """``summary`` as JSON, replaced atomically (a reader never sees half a file)."""
    text = json.dumps(summary, indent=2, default=str) + "\n"
    return write_text_atomically(path, text, overwrite=True)


StepMetrics = dict[str, torch.Tensor | float]
"""loss and grad_norm as 0-dim tensors on the device (reading one waits for the device), lr."""


LOG_COLUMNS = (
    "step",
    "loss",
    "loss_q0",
    "loss_q1",
    "loss_q2",
    "loss_q3",
    "lr",
    "grad_norm",
    "seconds",
    "heldout_bpd",
    "skipped",
)


class LossLog:
    """Rows of log.csv: the mean loss since the last row, overall and per quarter of the t range.

    Steps add device tensors; only writing a row reads them back, so a GPU is not made to wait
    for the host after every step.
    """

    def __init__(self, path: Path, num_steps: int) -> None:
        self.path, self.num_steps = path, num_steps
        self.start = time.perf_counter()
        self.step = 0
        self.last_row: dict[str, float] = {}
        self._reset()

    def _reset(self) -> None:
        self.sums: torch.Tensor | None = None
        self.counts: torch.Tensor | None = None
        self.losses: list[torch.Tensor] = []
        self.heldout_bpd: float | None = None
        self.skipped = 0
        self.last: dict[str, torch.Tensor | float] = {}

    def add(self, step: int, metrics: StepMetrics, output: LossOutput) -> None:
        self.step = step
        if "skipped" in metrics:  # its loss and gradient are not finite: counted, not averaged
            self.skipped += 1
            return
        per_sample = output.per_sample.detach().double()
        if self.sums is None or self.counts is None:
            self.sums = per_sample.new_zeros(4)
            self.counts = per_sample.new_zeros(4)
        quarter = (output.t * 4 // self.num_steps).clamp(max=3).long().to(per_sample.device)
        self.sums.index_add_(0, quarter, per_sample)
        self.counts.index_add_(0, quarter, torch.ones_like(per_sample))
        self.losses.append(torch.as_tensor(metrics["loss"]))
        self.last = {"lr": metrics["lr"], "grad_norm": metrics["grad_norm"]}

    def write(self) -> dict[str, float]:
        """Append the row of the steps since the last one; returns it."""
        row: dict[str, float] = {"seconds": time.perf_counter() - self.start}
        if self.skipped:
            row["skipped"] = self.skipped
        if self.losses and self.sums is not None and self.counts is not None:
            quarters = (self.sums / self.counts.clamp(min=1)).tolist()
            row |= {k: float(v) for k, v in self.last.items()}
            row |= {f"loss_q{i}": q for i, q in enumerate(quarters)}
            row["loss"] = float(torch.stack(self.losses).double().mean())
        if self.heldout_bpd is not None:
            row["heldout_bpd"] = self.heldout_bpd
        new = not self.path.exists()
        with self.path.open("a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=LOG_COLUMNS)
            if new:
                writer.writeheader()
            formatted = {k: f"{v:.6g}" for k, v in row.items()}
            writer.writerow({"step": self.step, **formatted})
        self._reset()
        self.last_row = {"step": self.step, **row}
        return row
