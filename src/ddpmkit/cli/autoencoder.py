"""``ddpmkit train-autoencoder``: images -> a KL autoencoder folder for latent diffusion."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ddpmkit.config.autoencoder import AutoencoderRunConfig
from ddpmkit.config.parsing import (
    add_config_flags,
    from_dict,
    merge,
    overrides_from_args,
    read_config_file,
)
from ddpmkit.progress import reporter

DESCRIPTION = (
    "Train the KL-regularised autoencoder of latent diffusion (Rombach et al. 2022) on a data "
    "source; writes a diffusers AutoencoderKL folder (config.json + safetensors), a picture of "
    "held-out reconstructions and their PSNR. Then: ddpmkit train --autoencoder FOLDER …"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="a .toml, .yaml or .json config file")
    parser.add_argument("--out", type=Path, required=True, help="the new autoencoder folder")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_config_flags(parser, AutoencoderRunConfig)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ddpmkit.training.autoencoder import train_autoencoder

    values: dict[str, Any] = {}
    if args.config:
        values = read_config_file(args.config)
    values = merge(values, overrides_from_args(args))
    config = from_dict(AutoencoderRunConfig, values, str(args.config or "config"))
    say = reporter(True)
    with tqdm(total=config.train.steps, disable=args.quiet, desc="train-autoencoder") as bar:

        def on_step(step: int, metrics: dict[str, float]) -> None:
            bar.update(1)
            if step % 50 == 0:
                bar.set_postfix(mse=f"{metrics['mse']:.4f}", refresh=False)

        report = train_autoencoder(config, args.out, on_step)
    say(
        f"ddpmkit: autoencoder {report.folder}: latents {report.latent_shape}, "
        f"scaling factor {report.scaling_factor:.4g}"
    )
    say(f"ddpmkit: held-out reconstruction PSNR {report.psnr:.2f} ± {report.psnr_ci95:.2f} dB")
    say(f"ddpmkit: reconstructions {report.preview}")
    return 0
