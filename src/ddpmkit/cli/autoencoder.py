"""``ddpmkit train-autoencoder``: images -> a KL autoencoder folder for latent diffusion (the flags
handed to `ddpmkit.train_autoencoder`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ddpmkit.config.autoencoder import AutoencoderRunConfig
from ddpmkit.config.parsing import add_config_flags, overrides_from_args

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
    from ddpmkit.api.companions import train_autoencoder

    report = train_autoencoder(
        out=args.out, config=args.config, progress=not args.quiet, **overrides_from_args(args)
    )
    print(
        f"ddpmkit: autoencoder {report.folder}: latents {report.latent_shape}, "
        f"scaling factor {report.scaling_factor:.4g}"
    )
    print(f"ddpmkit: held-out reconstruction PSNR {report.psnr:.2f} ± {report.psnr_ci95:.2f} dB")
    print(f"ddpmkit: reconstructions {report.preview}")
    return 0
