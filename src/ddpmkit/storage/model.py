"""A trained model read back from a model folder: the one object that sampling, evaluation and
restoration take whole (network, schedule, denoiser, data shape, the resolved config and where it
was read from).

Whether a folder is a ddpmkit checkpoint or a diffusers folder is decided once, by
`ModelSource.find`; everything after asks the model's ``source``."""

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
)
from ddpmkit.config.execution import Execution, pick_device
from ddpmkit.config.schema import RunConfig, SampleConfig
from ddpmkit.core.denoisers import NetworkDenoiser
from ddpmkit.core.schedules import NoiseSchedule
from ddpmkit.data.captions import Captions
from ddpmkit.data.config import DataConfig
from ddpmkit.networks.autoencoder import Autoencoder
from ddpmkit.networks.diffusers_unet import DiffusersUNet
from ddpmkit.networks.text import tokenizer_for
from ddpmkit.networks.text_unet import TextConditionedUNet
from ddpmkit.storage.autoencoder_folders import run_autoencoder
from ddpmkit.storage.checkpoints import (
    load_weights,
    load_weights_file,
    read_config,
    resolve_checkpoint,
    step_of,
)
from ddpmkit.storage.diffusers_folders import is_diffusers_folder, locate, run_config_of

ModelFormat = Literal["ddpmkit", "diffusers"]


@dataclass(frozen=True)
class ModelSource:
    """A model folder on disk and its format: a ddpmkit checkpoint or a diffusers folder."""

    folder: Path  # the checkpoint folder, or the diffusers folder's root
    format: ModelFormat

    @classmethod
    def find(cls, path: str | Path) -> ModelSource:
        """The model ``path`` names: a diffusers folder, a checkpoint, or a run's latest; a
        Hugging Face Hub repo id (``owner/name[@revision]``, not a local path) is its snapshot."""
        from ddpmkit.storage.hub import resolve_hub_name  # imports huggingface_hub only for a repo

        path = resolve_hub_name(path)
        if is_diffusers_folder(path):
            return cls(locate(path).root, "diffusers")
        return cls(resolve_checkpoint(path), "ddpmkit")

    @property
    def outputs_folder(self) -> Path:
        """Where commands write by default (see `outputs_folder_of`)."""
        return outputs_folder_of(self.folder)

    @property
    def run_step(self) -> int | None:
        """The step of a checkpoint inside a run folder; None for any other model folder."""
        in_run = self.format == "ddpmkit" and self.outputs_folder != self.folder
        return step_of(self.folder.name) if in_run else None


@dataclass(frozen=True)
class TrainedModel:
    """What sampling, evaluation and restoration need; built once, passed on whole."""

    config: RunConfig  # the resolved configuration the network was trained with
    network: nn.Module
    schedule: NoiseSchedule
    denoiser: NetworkDenoiser  # the network read as D(x; σ) with its parameterization
    shape: tuple[int, ...]  # per-sample shape of what is diffused (the latents of a latent model)
    source: ModelSource | None = None  # where it was read from (None for a model in training)
    autoencoder: Autoencoder | None = None  # decodes a latent model's samples to images
    captions: Captions | None = None  # a text-conditional model's captions and tokenizer

    @property
    def device(self) -> torch.device:
        return next(self.network.parameters()).device

    @property
    def checkpoint(self) -> Path | None:
        """The folder the model was read from (None for a model in training)."""
        return None if self.source is None else self.source.folder

    @property
    def execution(self) -> Execution:
        """How the model samples: its device, and the precision and compilation it was built for."""
        return Execution.of(self.device, self.config.sample)

    @property
    def training_data(self) -> DataConfig | None:
        """The data the model was trained on, where ddpmkit knows them (not a diffusers model's)."""
        known = self.source is None or self.source.format == "ddpmkit"
        return self.config.data if known else None

    @classmethod
    def of(
        cls,
        config: RunConfig,
        network: nn.Module,
        source: ModelSource | None = None,
        autoencoder: Autoencoder | None = None,
    ) -> TrainedModel:
        """A network and its resolved config as a model: the schedule, denoiser and captions
        built once."""
        where = str(source.folder) if source is not None else "config"
        if config.model.sample_shape is None:
            raise ValueError(f"{where}: no model.sample_shape; was it trained by ddpmkit?")
        check_sample_shape(config.model, where)
        schedule = build_schedule(config.diffusion)
        device = next(network.parameters()).device
        fast_network = Execution.of(device, config.sample).accelerate(network)
        denoiser = build_denoiser(fast_network, schedule, config.diffusion)
        if config.model.autoencoder is not None and autoencoder is None:
            raise ValueError(f"{where}: a latent model needs its autoencoder")
        shape = config.model.sample_shape
        captions = _captions(config, network)
        return cls(config, network, schedule, denoiser, shape, source, autoencoder, captions)

    def decode(self, samples: torch.Tensor) -> torch.Tensor:
        """Samples as images: a latent model's decoded (Rombach et al. 2022, §3), others as they are."""
        if self.autoencoder is None:
            return samples
        with torch.no_grad():
            device = next(self.autoencoder.parameters()).device
            return self.autoencoder.images(samples.to(device)).float().clamp(-1, 1).cpu()

    @property
    def outputs_folder(self) -> Path:
        """Where commands write by default (see `outputs_folder_of`)."""
        if self.source is None:
            raise ValueError("a model in training has no checkpoint folder")
        return self.source.outputs_folder

    def with_sample(self, sample: SampleConfig) -> TrainedModel:
        """The same weights with other sample options (``compile`` rebuilds the denoiser)."""
        config = dataclasses.replace(self.config, sample=sample)
        return TrainedModel.of(config, self.network, self.source, self.autoencoder)


def _captions(config: RunConfig, network: nn.Module) -> Captions | None:
    model = config.model
    if not model.text_conditional or model.class_names is None:
        return None
    if not isinstance(network, TextConditionedUNet):
        raise ValueError("a text-conditional model's network must be a TextConditionedUNet")
    tokenize = tokenizer_for(model.text, network.text_encoder)
    return Captions(model.captions, model.class_names, tokenize)


def outputs_folder_of(checkpoint: Path) -> Path:
    """Where commands write by default: a run's checkpoint into the run folder, a Hub snapshot into
    ``./<repo name>``, any other model folder (a diffusers folder, an imported checkpoint) into
    itself."""
    from ddpmkit.storage.hub import outputs_folder_in_hub_cache

    in_cache = outputs_folder_in_hub_cache(checkpoint)
    if in_cache is not None:  # a Hub snapshot: write beside the user, not into the cache
        return in_cache
    return checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint


def load_model(
    path: str | Path | ModelSource,
    device: str = "auto",
    which: Literal["ema", "model"] | None = None,
) -> TrainedModel:
    """The model of a checkpoint (or a run folder's latest, or a diffusers model folder) in eval
    mode, its config read once.

    ``which`` weights: ``ema`` or ``model``; None follows the checkpoint's ``sample.use_ema``. A
    diffusers folder holds one set of weights.
    """
    source = path if isinstance(path, ModelSource) else ModelSource.find(path)
    if source.format == "diffusers":
        folder = locate(source.folder)
        config = run_config_of(folder)
        network = build_network(config.model)
        weights = folder.weights.name
        unet = network.unet if isinstance(network, DiffusersUNet) else network  # its own keys
        load_weights_file(unet, folder.weights, str(folder.unet_config))
    else:
        config = read_config(source.folder)
        network = build_network(config.model)
        weights = which or ("ema" if config.sample.use_ema else "model")
        load_weights(network, source.folder, weights)
    if not all(torch.isfinite(p).all() for p in network.parameters()):
        raise ValueError(
            f"{source.folder}: its {weights} weights hold NaN/Inf (the run diverged before this "
            "checkpoint was written); sample an earlier checkpoint"
        )
    target = pick_device(device, option="device")
    network = network.to(target).eval()
    autoencoder = None
    if config.model.autoencoder is not None:
        autoencoder = run_autoencoder(source.outputs_folder, config.model.autoencoder)
        autoencoder = autoencoder.to(target).eval()
    return TrainedModel.of(config, network, source, autoencoder)
