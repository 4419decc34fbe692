"""A trained model read back from a checkpoint: its network, denoiser, schedule and data shape."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch import nn

from ddpmkit.config.builders import build_denoiser, build_network, build_schedule, pick_device
from ddpmkit.config.schema import RunConfig
from ddpmkit.core.denoisers import NetworkDenoiser
from ddpmkit.core.schedules import NoiseSchedule
from ddpmkit.pipeline.checkpoints import load_weights, read_config, resolve_checkpoint


@dataclass
class TrainedModel:
    """What sampling, evaluation and restoration need from a checkpoint."""

    checkpoint: Path
    config: RunConfig
    network: nn.Module
    schedule: NoiseSchedule
    denoiser: NetworkDenoiser
    shape: tuple[int, ...]  # per-sample data shape


def load_model(path: str | Path, device: str = "auto", which: str = "ema") -> TrainedModel:
    """The checkpoint (or a run folder's latest) with its ``ema`` or ``model`` weights, eval mode."""
    checkpoint = resolve_checkpoint(path)
    config = read_config(checkpoint)
    if config.model.sample_shape is None:
        raise ValueError(
            f"{checkpoint}: the config has no model.sample_shape; was it trained by ddpmkit?"
        )
    network = build_network(config.model)
    load_weights(network, checkpoint, which)
    network = network.to(pick_device(device)).eval()
    schedule = build_schedule(config.diffusion)
    denoiser = build_denoiser(network, schedule, config.diffusion)
    return TrainedModel(checkpoint, config, network, schedule, denoiser, config.model.sample_shape)
