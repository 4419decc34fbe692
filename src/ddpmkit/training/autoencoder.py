"""Training the KL-regularised autoencoder of latent diffusion (Rombach et al. 2022, §3): AdamW on
the reconstruction error plus a small KL, then the latent scaling estimated from the data."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ddpmkit.config.autoencoder import AutoencoderRunConfig
from ddpmkit.config.execution import pick_device
from ddpmkit.config.parsing import to_dict
from ddpmkit.data import dataset_size, load_data, save_image_grid, stack_items
from ddpmkit.evaluation.restoration_metrics import psnr
from ddpmkit.files import write_text_atomically
from ddpmkit.learning_rate import learning_rate
from ddpmkit.likelihood.report import mean_ci95
from ddpmkit.networks.autoencoder import Autoencoder, autoencoder_loss
from ddpmkit.outputs import picture_upscale
from ddpmkit.storage.autoencoder_folders import save_autoencoder
from ddpmkit.training.batches import StepBatches, batch_stream
from ddpmkit.training.latents import raw_latents, scaling_factor_of

StepCallback = Callable[[int, dict[str, float]], None]
"""Called after every step with (step, {"loss", "mse", "kl"})."""

PREVIEW_IMAGES = 16
"""Held-out images in the reconstruction picture (originals above, reconstructions below)."""


@dataclass(frozen=True)
class AutoencoderReport:
    """What a trained autoencoder achieves on held-out images.

    Attributes:
        folder: the diffusers ``AutoencoderKL`` folder written.
        psnr: mean reconstruction PSNR (dB) of the held-out images, posterior means decoded.
        psnr_ci95: half-width of its 95% confidence interval.
        scaling_factor: 1 / std of the training latents (Rombach et al. 2022, Appendix G).
        latent_shape: one image's latent shape (C, H, W).
        preview: ``reconstructions.png``, originals above their reconstructions.
    """

    folder: Path
    psnr: float
    psnr_ci95: float
    scaling_factor: float
    latent_shape: tuple[int, ...]
    preview: Path


def train_autoencoder(
    config: AutoencoderRunConfig, folder: Path, on_step: StepCallback | None = None
) -> AutoencoderReport:
    """Train, scale the latents, save a diffusers AutoencoderKL folder, report held-out PSNR."""
    if folder.exists() and any(folder.iterdir()):
        raise FileExistsError(f"output folder {folder} is not empty; choose a new --out")
    data = load_data(config.data, "train")
    if data.kind != "image":
        raise ValueError(
            f"an autoencoder needs image data; data.source {config.data.source!r} has vectors"
        )
    network_config = dataclasses.replace(config.autoencoder, in_channels=data.shape[0])
    train = config.train
    device = pick_device(train.device)
    torch.manual_seed(train.seed)
    model = Autoencoder(network_config).to(device)
    _fit(model, data.dataset, config, on_step)
    model.eval()
    scale = scaling_factor_of(raw_latents(model, stack_items(data.dataset)[0]))
    model.config = dataclasses.replace(model.config, scaling_factor=scale)
    heldout = stack_items(load_data(config.data, "heldout").dataset)[0]
    with torch.no_grad():
        reconstructed = model.images(model.latents(heldout.to(device))).clamp(-1, 1).cpu()
    scores = mean_ci95(psnr(reconstructed, heldout))
    extra: dict[str, Any] = {"run": to_dict(dataclasses.replace(config, autoencoder=model.config))}
    extra["heldout_psnr_db"] = round(scores[0], 3)
    save_autoencoder(model, folder, sample_size=data.shape[-1], extra=extra)
    shown = min(PREVIEW_IMAGES, len(heldout))
    preview = save_image_grid(  # originals in the first row, reconstructions below
        torch.cat([heldout[:shown], reconstructed[:shown]]), folder / "reconstructions.png",
        nrow=shown, upscale=picture_upscale(heldout.shape[-1]),
    )  # fmt: skip
    report = json.dumps({"heldout_psnr_db": scores[0]}, indent=2) + "\n"
    write_text_atomically(folder / "report.json", report, overwrite=True)
    latent_shape = tuple(model.latents(heldout[:1].to(device)).shape[1:])
    return AutoencoderReport(folder, scores[0], scores[1], scale, latent_shape, preview)


def _fit(
    model: Autoencoder,
    dataset: torch.utils.data.Dataset[tuple[torch.Tensor, torch.Tensor]],
    config: AutoencoderRunConfig,
    on_step: StepCallback | None,
) -> None:
    train = config.train
    device = next(model.parameters()).device
    optimizer = torch.optim.AdamW(model.parameters(), lr=train.lr)
    generator = torch.Generator(device).manual_seed(train.seed)
    batches = batch_stream(
        dataset, StepBatches(dataset_size(dataset), train.batch_size, train.seed)
    )
    model.train()
    for step in range(train.steps):
        x, _ = next(batches)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, train.lr, train.warmup_steps)
        loss, metrics = autoencoder_loss(model, x.to(device), train.kl_weight, generator)
        optimizer.zero_grad(set_to_none=True)
        torch.autograd.backward(loss)
        if train.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), train.grad_clip)
        optimizer.step()
        if on_step is not None:
            on_step(step + 1, metrics)
