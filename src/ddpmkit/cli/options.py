"""Options several commands share: the checkpoint argument, --device and --quiet, and integer
flags with a lower bound."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path

DEVICE_HELP = "auto (CUDA if available, else the CPU), cpu, cuda, cuda:1, …"


def add_checkpoint(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "checkpoint",
        type=Path,
        help="checkpoint folder, run folder (its latest checkpoint), diffusers model folder "
        "(a DDPMPipeline folder, or a UNet2DModel folder with scheduler_config.json), or a "
        "Hugging Face Hub repo id owner/name[@revision] (with the hub extra; a local path wins)",
    )


def add_device_and_quiet(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", help=DEVICE_HELP)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer >= ``minimum`` (argparse names the flag in its error)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


def finite_float(text: str) -> float:
    """An argparse type: a finite number (NaN and ±inf are refused; argparse names the flag)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


finite_float.__name__ = "finite number"
