"""Options several commands share: the checkpoint argument, --device and --quiet."""

from __future__ import annotations

import argparse
from pathlib import Path

DEVICE_HELP = "auto (CUDA if available, else the CPU), cpu, cuda, cuda:1, …"


def add_checkpoint(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", type=Path, help="checkpoint folder or run folder")


def add_device_and_quiet(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", help=DEVICE_HELP)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
