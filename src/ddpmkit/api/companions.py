"""The models that serve a diffusion model, trained from Python as the commands do: the autoencoder
of latent diffusion (``ddpmkit train-autoencoder``) and the noisy classifier of classifier
guidance (``ddpmkit train-classifier``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ddpmkit.api.training import data_section, nested
from ddpmkit.config.autoencoder import AutoencoderRunConfig
from ddpmkit.config.builders import build_schedule
from ddpmkit.config.execution import pick_device
from ddpmkit.config.parsing import from_dict, merge, read_config_file
from ddpmkit.data import load_data, stack_items
from ddpmkit.outputs import refuse_existing
from ddpmkit.progress import progress_callback
from ddpmkit.storage.checkpoints import read_config
from ddpmkit.storage.classifier_folders import build_classifier, save_classifier
from ddpmkit.storage.model import ModelSource, outputs_folder_of
from ddpmkit.training.autoencoder import AutoencoderReport
from ddpmkit.training.autoencoder import train_autoencoder as fit_autoencoder
from ddpmkit.training.classifier import noisy_accuracy, train_noisy_classifier

AUTOENCODER_SECTIONS = ("data", "autoencoder", "train")
"""The sections of an autoencoder's configuration (``AutoencoderRunConfig``)."""


def train_autoencoder(
    data: str | Path | dict[str, Any] | None = None,
    *,
    out: str | Path,
    config: str | Path | dict[str, Any] | None = None,
    progress: bool = True,
    **overrides: Any,
) -> AutoencoderReport:
    """Train the KL autoencoder of latent diffusion (Rombach et al. 2022, §3) and write it as a
    diffusers ``AutoencoderKL`` folder with its reconstructions; then train a latent model with
    ``ddpmkit.train(..., model={"autoencoder": out})``.

    Args:
        data: a source name, an image folder or array file, or a dict of ``data`` options.
        out: the new autoencoder folder (an existing, non-empty one is refused).
        config: a .toml/.yaml/.json file or a dict of sections (``data``, ``autoencoder``,
            ``train``).
        progress: draw a progress bar.
        overrides: sections as dicts (``train={"steps": 500}``) or dotted keys.

    Returns:
        The held-out reconstruction PSNR, the latent shape and scaling factor, the files.
    """
    values: dict[str, Any] = {}
    if config is not None:
        values = config if isinstance(config, dict) else read_config_file(config)
    values = merge(values, nested(overrides, AUTOENCODER_SECTIONS))
    if data is not None:
        values = merge(values, {"data": data_section(data)})
    where = str(config) if isinstance(config, (str, Path)) else "config"
    resolved = from_dict(AutoencoderRunConfig, values, where)
    steps = resolved.train.steps
    with progress_callback(progress, "train-autoencoder", "step") as report:
        on_step = None if report is None else (lambda step, _metrics: report(step, steps))
        return fit_autoencoder(resolved, Path(out), on_step)


@dataclass(frozen=True)
class ClassifierReport:
    """A trained noisy classifier and how well it recognises noised held-out data.

    Attributes:
        folder: the classifier folder (``Model.sample(classifier=folder, label=y)`` reads it).
        accuracy: held-out accuracy by training step t (at t = 0, T/4 and T/2).
    """

    folder: Path
    accuracy: dict[int, float]


def train_classifier(
    model: str | Path,
    *,
    out: str | Path | None = None,
    steps: int = 2000,
    batch_size: int = 128,
    lr: float = 1e-3,
    base_channels: int = 32,
    seed: int = 0,
    device: str | None = None,
    progress: bool = True,
) -> ClassifierReport:
    """Train a time-aware classifier p_φ(y | x_t, t) (Dhariwal & Nichol 2021, §4) on a run's
    labelled data with the run's noise schedule, for classifier guidance.

    Args:
        model: the run folder or checkpoint whose data and schedule the classifier learns.
        out: the new classifier folder (default: ``<run>/classifier``; never overwritten).
        steps: optimizer steps.
        batch_size: items per step.
        lr: Adam's learning rate.
        base_channels: the classifier's width.
        seed: seeds the weights, the batches and the noise.
        device: ``"cpu"``, ``"cuda"``, …; None picks CUDA when available.
        progress: draw a progress bar.
    """
    source = ModelSource.find(model)
    if source.format != "ddpmkit":
        raise ValueError(
            f"{model}: a classifier learns a ddpmkit run's data, not a diffusers model's"
        )
    config = read_config(source.folder)
    folder = Path(out) if out is not None else outputs_folder_of(source.folder) / "classifier"
    refuse_existing(folder)
    train, heldout = load_data(config.data, "train"), load_data(config.data, "heldout")
    if train.num_classes is None:
        raise ValueError(f"{model}: the run's data have no labels to train a classifier on")
    x, labels = stack_items(train.dataset)
    torch.manual_seed(seed)
    network, architecture = build_classifier(train.shape, train.num_classes, base_channels)
    network = network.to(pick_device(device or "auto", "device"))
    schedule = build_schedule(config.diffusion)
    generator = torch.Generator().manual_seed(seed)
    with progress_callback(progress, "classifier", "step") as report:
        on_step = None if report is None else (lambda step, _loss: report(step, steps))
        train_noisy_classifier(
            network, schedule, x, labels, steps=steps, batch_size=batch_size, lr=lr,
            generator=generator, on_step=on_step,
        )  # fmt: skip
    x_heldout, labels_heldout = stack_items(heldout.dataset)
    accuracy = {
        step: noisy_accuracy(network, schedule, x_heldout, labels_heldout, step, generator)
        for step in (0, schedule.num_steps // 4, schedule.num_steps // 2)
    }
    return ClassifierReport(
        save_classifier(folder, network, architecture, config.diffusion), accuracy
    )
