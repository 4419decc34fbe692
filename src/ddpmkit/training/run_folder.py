"""A run folder: claimed by a new run, resumed from its newest readable checkpoint by a resumed one.

It holds ``config.json`` (the resolved config; a ``train.minutes`` run rewrites it once planned),
``plan.json``, ``checkpoints/step-NNNNNNN/``, ``samples/``, ``log.csv`` and ``summary.json``. A
checkpoint that cannot be read is set aside (renamed ``….unreadable``), never deleted; outputs of
steps after the one resumed from are discarded, since the resumed run writes them again.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from ddpmkit.config.parsing import to_dict
from ddpmkit.config.schema import RunConfig
from ddpmkit.files import write_text_atomically
from ddpmkit.networks.autoencoder import Autoencoder
from ddpmkit.storage.autoencoder_folders import RUN_AUTOENCODER, save_autoencoder
from ddpmkit.storage.checkpoints import (
    CHECKPOINT_PREFIX,
    UnreadableCheckpointError,
    find_checkpoints,
    read_config,
    step_of,
)
from ddpmkit.training.budget import Plan
from ddpmkit.training.run_lock import LOCK_FILE
from ddpmkit.training.run_logs import write_summary

PLAN_FILE = "plan.json"
"""What a train.minutes run planned (written once; a resumed run keeps the plan)."""

UNREADABLE = (UnreadableCheckpointError, json.JSONDecodeError, OSError, KeyError)
"""What loading a damaged checkpoint raises; such a checkpoint is set aside."""


@dataclasses.dataclass(frozen=True)
class RunFolder:
    """The folder a run writes, and what a new or a resumed run does with it."""

    path: Path

    @property
    def checkpoints(self) -> list[Path]:
        """The complete checkpoints, oldest first."""
        return find_checkpoints(self.path)

    def stop_message(self) -> str:
        """'training stopped' and the checkpoint a resumed run would start from."""
        found = self.checkpoints
        last = f"the last good checkpoint is {found[-1]}" if found else "no checkpoint was written"
        return f"training stopped; {last}"

    def claim(
        self,
        config: RunConfig,
        network: nn.Module,
        autoencoder: Autoencoder | None = None,
        image_size: int = 0,
    ) -> None:
        """Start a new run here: the folder must be empty, writable and have room for two
        checkpoints; it gets the config (and a latent run's autoencoder)."""
        if self.path.exists() and any(p.name != LOCK_FILE for p in self.path.iterdir()):
            raise FileExistsError(
                f"run folder {self.path} is not empty; resume it with --resume "
                "or choose a new folder with --out"
            )
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self.write_config(config)
            if autoencoder is not None:  # the run keeps the autoencoder it was trained on
                save_autoencoder(autoencoder, self.path / RUN_AUTOENCODER, sample_size=image_size)
        except OSError as error:
            raise ValueError(
                f"run folder {self.path}: cannot write there ({error.strerror})"
            ) from None
        self.check_disk_space(network)

    def check_disk_space(self, network: nn.Module) -> None:
        """Refuse to start when the disk cannot hold two checkpoints: the weights, their average
        and AdamW's two moments, each as large as the network."""
        weights = sum(p.numel() * p.element_size() for p in network.parameters())
        needed = 2 * 4 * weights
        free = shutil.disk_usage(self.path).free
        if free < needed:
            raise ValueError(
                f"run folder {self.path}: {free / 2**20:,.0f} MiB free on its disk, but two "
                f"checkpoints of this network need {needed / 2**20:,.0f} MiB"
            )

    def write_config(self, config: RunConfig) -> None:
        text = json.dumps(to_dict(config), indent=2) + "\n"
        write_text_atomically(self.path / "config.json", text, overwrite=True)

    def write_plan(self, config: RunConfig, plan: Plan) -> None:
        """The planned config and the figures behind the plan."""
        self.write_config(config)
        text = json.dumps(dataclasses.asdict(plan), indent=2) + "\n"
        write_text_atomically(self.path / PLAN_FILE, text, overwrite=True)

    def saved_plan(self, minutes: float | None) -> Plan | None:
        """The plan a ``train.minutes`` run made before it stopped (None if it made none or
        another budget is asked for now)."""
        if minutes is None or not (self.path / PLAN_FILE).is_file():
            return None
        saved = read_config(self.path).train
        if saved.minutes != minutes:
            return None
        figures: dict[str, Any] = json.loads((self.path / PLAN_FILE).read_text())
        figures.pop("train")
        return Plan(saved, **figures)

    def resume(self, requested: RunConfig, load: Callable[[Path], int], main: bool) -> int:
        """Load the newest readable checkpoint through ``load`` (which returns its step),
        setting aside unreadable ones; returns the step to continue from (0 when the run
        stopped before its first checkpoint). The main process discards later outputs."""
        found = self.checkpoints
        if not found and (self.path / "config.json").is_file():
            check_resumable(read_config(self.path), requested, self.path)
            if main:
                self.discard_outputs_after(0)
            return 0
        for checkpoint in reversed(found):
            try:
                saved = read_config(checkpoint)
            except (json.JSONDecodeError, OSError) as error:
                set_aside(checkpoint, error)
                continue
            check_resumable(saved, requested, checkpoint)
            try:
                step = load(checkpoint)
            except UNREADABLE as error:
                set_aside(checkpoint, error)
                continue
            if main:
                self.discard_outputs_after(step)
            return step
        raise FileNotFoundError(f"cannot resume: {self.path} holds no readable checkpoint")

    def write_summary(self, figures: dict[str, Any]) -> Path:
        """summary.json: ``figures`` and the run's newest checkpoint, sample grid and log."""
        checkpoints = self.checkpoints
        samples = sorted((self.path / "samples").glob(f"{CHECKPOINT_PREFIX}*.png"))
        return write_summary(
            self.path / "summary.json",
            figures | {
                "checkpoint": str(checkpoints[-1]) if checkpoints else None,
                "samples": str(samples[-1]) if samples else None,
                "log": str(self.path / "log.csv"),
            },
        )  # fmt: skip

    def discard_outputs_after(self, step: int) -> None:
        """Remove log rows and sample files of steps after ``step``: the resumed run writes them
        again, identically."""
        log = self.path / "log.csv"
        if log.is_file():
            lines = log.read_text().splitlines(keepends=True)
            kept = [lines[0], *(row for row in lines[1:] if int(row.split(",")[0]) <= step)]
            log.write_text("".join(kept))
        for path in (self.path / "samples").glob(f"{CHECKPOINT_PREFIX}*"):
            written_at = step_of(path.stem)  # None for `ddpmkit sample`'s own outputs
            if written_at is not None and written_at > step:
                path.unlink()


def set_aside(checkpoint: Path, error: Exception) -> None:
    """Rename an unreadable checkpoint to ``….unreadable`` (kept, out of the resumed run's way)."""
    aside = checkpoint.with_name(checkpoint.name + ".unreadable")
    checkpoint.rename(aside)
    warnings.warn(
        f"checkpoint {checkpoint} is unreadable ({type(error).__name__}: {error}); kept as "
        f"{aside.name}, resuming from the one before it",
        RuntimeWarning,
        stacklevel=4,
    )


def check_resumable(saved: RunConfig, requested: RunConfig, checkpoint: Path) -> None:
    """Only the length of training, the micro-batching of a step and the TensorBoard log may
    change on resume; anything else would not be a resumption."""
    same_except_steps = dataclasses.replace(
        requested,
        train=dataclasses.replace(
            requested.train,
            steps=saved.train.steps,
            grad_accum=saved.train.grad_accum,
            tensorboard=saved.train.tensorboard,
        ),
    )
    if same_except_steps != saved:
        changed = [
            f.name
            for f in dataclasses.fields(saved)
            if getattr(saved, f.name) != getattr(same_except_steps, f.name)
        ]
        raise ValueError(
            f"cannot resume from {checkpoint}: the config differs in section(s) {', '.join(changed)}; "
            "only train.steps, train.grad_accum and train.tensorboard may change when resuming"
        )
