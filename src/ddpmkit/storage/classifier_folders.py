"""Noisy classifiers on disk: ``classifier.json`` (architecture, schedule) + ``classifier.safetensors``.

Loading one never runs code. The schedule it was trained with is stored beside it, so guidance can
refuse a diffusion model whose noise levels differ.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ddpmkit.config.builders import build_schedule
from ddpmkit.config.parsing import from_dict, to_dict
from ddpmkit.config.schema import DiffusionConfig
from ddpmkit.core.schedules import NoiseSchedule
from ddpmkit.networks.classifier import NoisyClassifier, NoisyClassifierConfig, NoisyMLPClassifier
from ddpmkit.outputs import refuse_existing

WEIGHTS, RECORD = "classifier.safetensors", "classifier.json"


def build_classifier(
    shape: tuple[int, ...], num_classes: int, base_channels: int = 32
) -> tuple[nn.Module, dict[str, Any]]:
    """A classifier for data of per-sample ``shape``: the U-Net encoder for images, else the MLP."""
    if len(shape) == 3:
        config = NoisyClassifierConfig(
            in_channels=shape[0], sample_size=shape[1], num_classes=num_classes,
            base_channels=base_channels,
        )  # fmt: skip
        return NoisyClassifier(config), {"kind": "unet", **dataclasses.asdict(config)}
    arguments = {"dim": shape[0], "num_classes": num_classes, "hidden": 2 * base_channels}
    return NoisyMLPClassifier(**arguments), {"kind": "mlp", **arguments}


def _network(architecture: dict[str, Any]) -> nn.Module:
    options = {k: v for k, v in architecture.items() if k != "kind"}
    if architecture["kind"] == "unet":
        options["channel_mults"] = tuple(options["channel_mults"])
        return NoisyClassifier(NoisyClassifierConfig(**options))
    return NoisyMLPClassifier(**options)


def save_classifier(
    folder: Path, network: nn.Module, architecture: dict[str, Any], diffusion: DiffusionConfig
) -> Path:
    """Write the classifier folder atomically; an existing folder is never replaced."""
    folder = Path(folder)
    refuse_existing(folder)
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    record = {"architecture": architecture, "diffusion": to_dict(diffusion)}
    (partial / RECORD).write_text(json.dumps(record, indent=2) + "\n")
    weights = {k: v.detach().contiguous().cpu() for k, v in network.state_dict().items()}
    save_file(weights, partial / WEIGHTS)
    partial.rename(folder)
    return folder


@dataclass(frozen=True)
class LoadedClassifier:
    """A noisy classifier read back: its network (eval mode, CPU), classes and schedule."""

    network: nn.Module
    num_classes: int
    schedule: NoiseSchedule  # the schedule it was trained under
    folder: Path

    def check_schedule(self, schedule: NoiseSchedule) -> None:
        """Refuse to guide a model whose noise levels differ from the classifier's."""
        same = schedule.num_steps == self.schedule.num_steps and torch.allclose(
            schedule.betas, self.schedule.betas
        )
        if not same:
            raise ValueError(
                f"classifier {self.folder} was trained with another noise schedule than the "
                f"model ({self.schedule.num_steps} vs {schedule.num_steps} steps or different betas)"
            )


def load_classifier(folder: str | Path) -> LoadedClassifier:
    """The classifier of a folder written by ``save_classifier``."""
    folder = Path(folder)
    if not (folder / RECORD).is_file() or not (folder / WEIGHTS).is_file():
        raise FileNotFoundError(
            f"{folder} is not a classifier folder: it needs {RECORD} and {WEIGHTS} "
            "(made by ddpmkit train-classifier)"
        )
    record = json.loads((folder / RECORD).read_text())
    network = _network(record["architecture"])
    network.load_state_dict(load_file(folder / WEIGHTS, device="cpu"), strict=True)
    diffusion = from_dict(DiffusionConfig, record["diffusion"], str(folder / RECORD))
    return LoadedClassifier(
        network.eval(), record["architecture"]["num_classes"], build_schedule(diffusion), folder
    )
