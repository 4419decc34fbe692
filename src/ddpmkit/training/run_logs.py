"""Experiment logs beside log.csv: TensorBoard event files (optional) and summary.json.

TensorBoard (``train.tensorboard``, needs the ``tensorboard`` package) receives every log row
(loss overall and per quarter of t, learning rate, gradient norm, held-out bits/dim, skipped
steps), the training throughput in images/s, and every sample grid. ``summary.json`` says what
the run is and where it stands; it is rewritten at the end of every ``fit``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image


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
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    os.replace(partial, path)
    return path
