"""``ddpmkit import-diffusers`` and ``export-diffusers``: a diffusers model folder to a ddpmkit
checkpoint and back (files only; diffusers itself is not needed)."""

from __future__ import annotations

import argparse
from pathlib import Path

IMPORT = (
    "Write a ddpmkit checkpoint folder from a diffusers DDPMPipeline folder (or a UNet2DModel "
    "folder with scheduler_config.json): the U-Net's weights and its noise schedule. Every "
    "ddpmkit command also reads the diffusers folder directly."
)
EXPORT = (
    "Write a diffusers DDPMPipeline folder (model_index.json, unet/, scheduler/) from a ddpmkit "
    "checkpoint or run folder, with the weights sampling uses (EMA by default)."
)


def add_import(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", type=Path, help="the diffusers model folder")
    parser.add_argument("destination", type=Path, help="the new ddpmkit checkpoint folder")
    parser.set_defaults(run=run_import)


def add_export(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", type=Path, help="checkpoint folder or run folder")
    parser.add_argument("destination", type=Path, help="the new diffusers pipeline folder")
    parser.add_argument(
        "--weights",
        choices=("ema", "model"),
        help="which weights (default: those the checkpoint samples with, usually ema)",
    )
    parser.add_argument(
        "--no_card",
        action="store_true",
        help="no model card (README.md with the training config and the run's figures)",
    )
    parser.set_defaults(run=run_export)


def run_import(args: argparse.Namespace) -> int:
    from ddpmkit.storage.checkpoints import save_weights
    from ddpmkit.storage.model import ModelSource, load_model

    source = ModelSource.find(args.source)
    if source.format != "diffusers":
        raise ValueError(
            f"{args.source} is not a diffusers model folder (no model_index.json, and no "
            "config.json of a UNet2DModel)"
        )
    model = load_model(source, "cpu")
    saved = save_weights(args.destination, model.config, model.network)
    print(f"ddpmkit: checkpoint {saved} (sample it with: ddpmkit sample {saved})")
    return 0


def run_export(args: argparse.Namespace) -> int:
    from ddpmkit.api.model import load

    model = load(args.checkpoint, "cpu", args.weights)
    written = model.export_diffusers(args.destination, card=not args.no_card)
    print(f"ddpmkit: diffusers pipeline {written} (DDPMPipeline.from_pretrained reads it)")
    return 0
