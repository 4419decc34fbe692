"""Latent diffusion's data side: images encoded once by a trained autoencoder (Rombach et al. 2022,
§3), and the latent scaling estimated from them."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.data import Dataset

from ddpmkit.data.arrays import ArrayDataset
from ddpmkit.data.loading import stack_items
from ddpmkit.networks.autoencoder import Autoencoder


@torch.no_grad()
def raw_latents(autoencoder: Autoencoder, images: Tensor, batch_size: int = 256) -> Tensor:
    """The posterior means E[z|x] of ``images`` (N, C, H, W) in [-1, 1], unscaled, on the CPU."""
    device = next(autoencoder.parameters()).device
    parts = [
        autoencoder.encode(images[i : i + batch_size].to(device)).mean.float().cpu()
        for i in range(0, len(images), batch_size)
    ]
    return torch.cat(parts)


def scaling_factor_of(latents: Tensor) -> float:
    """1 / std of the raw latents, so that the diffusion model sees unit-variance data (Rombach
    et al. 2022, §4.3.2 and Appendix G: the "rescaling" of the KL-regularised latent space)."""
    std = float(latents.double().std())
    if not std > 0:
        raise ValueError("the autoencoder's latents of the data are constant: cannot scale them")
    return 1.0 / std


@torch.no_grad()
def encode_dataset(
    autoencoder: Autoencoder, dataset: Dataset[tuple[Tensor, Tensor]], batch_size: int = 256
) -> ArrayDataset:
    """(z, label) pairs in memory: every image's posterior mean, shifted and scaled as the
    autoencoder's config says (``Autoencoder.latents``)."""
    images, labels = stack_items(dataset)
    raw = raw_latents(autoencoder, images, batch_size)
    config = autoencoder.config
    latents = (raw - config.shift_factor) * config.scaling_factor
    return ArrayDataset(latents, labels, "raw")
