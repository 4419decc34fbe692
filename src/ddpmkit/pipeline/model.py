"""A trained model read back from a checkpoint: the one object that sampling, evaluation and
restoration take whole (network, schedule, denoiser, data shape and the resolved config)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from ddpmkit.config.builders import (
    build_denoiser,
    build_network,
    build_schedule,
    check_sample_shape,
    pick_device,
)
from ddpmkit.config.schema import RunConfig, SampleConfig
from ddpmkit.core.denoisers import NetworkDenoiser
from ddpmkit.core.schedules import NoiseSchedule
from ddpmkit.networks.autoencoder import Autoencoder
from ddpmkit.networks.execution import accelerate
from ddpmkit.networks.text import tokenizer_for
from ddpmkit.pipeline.checkpoints import (
    load_weights,
    load_weights_file,
    read_config,
    resolve_checkpoint,
)
from ddpmkit.pipeline.diffusers_folders import is_diffusers_folder, locate, run_config_of
from ddpmkit.pipeline.latents import run_autoencoder
from ddpmkit.pipeline.prompts import Captions


@dataclass(frozen=True)
class TrainedModel:
    """What sampling, evaluation and restoration need; built once, passed on whole."""

    config: RunConfig  # the resolved configuration the network was trained with
    network: nn.Module
    schedule: NoiseSchedule
    denoiser: NetworkDenoiser  # the network read as D(x; σ) with its parameterization
    shape: tuple[int, ...]  # per-sample shape of what is diffused (the latents of a latent model)
    checkpoint: Path | None = None  # the folder it was read from (None for a model in training)
    autoencoder: Autoencoder | None = None  # decodes a latent model's samples to images
    captions: Captions | None = None  # a text-conditional model's captions and tokenizer

    @property
    def device(self) -> torch.device:
        return next(self.network.parameters()).device

    @classmethod
    def of(
        cls,
        config: RunConfig,
        network: nn.Module,
        checkpoint: Path | None = None,
        autoencoder: Autoencoder | None = None,
    ) -> TrainedModel:
        """A network and its resolved config as a model: the schedule, denoiser and captions
        built once."""
        if config.model.sample_shape is None:
            raise ValueError(
                f"{checkpoint or 'config'}: no model.sample_shape; was it trained by ddpmkit?"
            )
        check_sample_shape(config.model, str(checkpoint or "config"))
        schedule = build_schedule(config.diffusion)
        fast_network = accelerate(network, compile=config.sample.compile)
        denoiser = build_denoiser(fast_network, schedule, config.diffusion)
        if config.model.autoencoder is not None and autoencoder is None:
            raise ValueError(f"{checkpoint or 'config'}: a latent model needs its autoencoder")
        shape = config.model.sample_shape
        return cls(
            config,
            network,
            schedule,
            denoiser,
            shape,
            checkpoint,
            autoencoder,
            _captions(config, network),
        )

    def decode(self, samples: torch.Tensor) -> torch.Tensor:
        """Samples as images: a latent model's decoded (Rombach et al. 2022, §3), others as they are."""
        if self.autoencoder is None:
            return samples
        with torch.no_grad():
            device = next(self.autoencoder.parameters()).device
            return self.autoencoder.images(samples.to(device)).float().clamp(-1, 1).cpu()

    @property
    def outputs_folder(self) -> Path:
        """Where commands write by default (see :func:`outputs_folder_of`)."""
        if self.checkpoint is None:
            raise ValueError("a model in training has no checkpoint folder")
        return outputs_folder_of(self.checkpoint)

    def with_sample(self, sample: SampleConfig) -> TrainedModel:
        """The same weights with other sample options (``compile`` rebuilds the denoiser)."""
        config = dataclasses.replace(self.config, sample=sample)
        return TrainedModel.of(config, self.network, self.checkpoint, self.autoencoder)


def _captions(config: RunConfig, network: nn.Module) -> Captions | None:
    model = config.model
    if not model.text_conditional or model.class_names is None:
        return None
    tokenize = tokenizer_for(model.text, network.text_encoder)
    return Captions(model.captions, model.class_names, tokenize)


def model_folder(path: str | Path) -> Path:
    """The folder a model is read from: a diffusers folder, a checkpoint, or a run's latest."""
    return locate(path).root if is_diffusers_folder(path) else resolve_checkpoint(path)


def outputs_folder_of(checkpoint: Path) -> Path:
    """Where commands write by default: a run's checkpoint into the run folder, any other model
    folder (a diffusers folder, an imported checkpoint) into itself."""
    return checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint


def load_model(
    path: str | Path, device: str = "auto", which: Literal["ema", "model"] | None = None
) -> TrainedModel:
    """The checkpoint (or a run folder's latest, or a diffusers model folder) in eval mode, its
    config read once.

    ``which`` weights: ``ema`` or ``model``; None follows the checkpoint's ``sample.use_ema``. A
    diffusers folder holds one set of weights.
    """
    if is_diffusers_folder(path):
        folder = locate(path)
        checkpoint, config = folder.root, run_config_of(folder)
        network = build_network(config.model)
        weights = folder.weights.name
        load_weights_file(network, folder.weights, str(folder.unet_config))
    else:
        checkpoint = resolve_checkpoint(path)
        config = read_config(checkpoint)
        network = build_network(config.model)
        weights = which or ("ema" if config.sample.use_ema else "model")
        load_weights(network, checkpoint, weights)
    if not all(torch.isfinite(p).all() for p in network.parameters()):
        raise ValueError(
            f"{checkpoint}: its {weights} weights hold NaN/Inf (the run diverged before this "
            "checkpoint was written); sample an earlier checkpoint"
        )
    target = pick_device(device, option="device")
    network = network.to(target).eval()
    autoencoder = None
    if config.model.autoencoder is not None:
        autoencoder = run_autoencoder(outputs_folder_of(checkpoint), config.model.autoencoder)
        autoencoder = autoencoder.to(target).eval()
    return TrainedModel.of(config, network, checkpoint, autoencoder)
