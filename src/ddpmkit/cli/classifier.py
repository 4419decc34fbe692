"""``ddpmkit train-classifier``: a time-aware classifier p(y|x_t, t) on a run's data and schedule."""

from __future__ import annotations

import argparse
from pathlib import Path

from ddpmkit.cli.options import add_checkpoint, add_device_and_quiet, at_least, finite_float

DESCRIPTION = (
    "Trains a noisy classifier (Dhariwal & Nichol 2021) on the labelled training data of a run, "
    "with the run's noise schedule; sample with "
    "`ddpmkit sample RUN --classifier FOLDER --classifier_scale S --label Y`."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_checkpoint(parser)
    parser.add_argument("--steps", type=at_least(1), default=2000, help="optimizer steps")
    parser.add_argument("--batch_size", type=at_least(1), default=128, help="items per step")
    parser.add_argument("--lr", type=finite_float, default=1e-3, help="Adam learning rate")
    parser.add_argument(
        "--base_channels", type=at_least(4), default=32, help="width of the classifier"
    )
    parser.add_argument("--seed", type=int, default=0, help="seeds weights, batches and noise")
    parser.add_argument("--out", type=Path, help="classifier folder (default: <run>/classifier)")
    add_device_and_quiet(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ddpmkit.api.companions import train_classifier

    report = train_classifier(
        args.checkpoint, out=args.out, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
        base_channels=args.base_channels, seed=args.seed, device=args.device,
        progress=not args.quiet,
    )  # fmt: skip
    for step, accuracy in report.accuracy.items():
        print(f"ddpmkit: held-out accuracy at t = {step}: {accuracy:.3f}")
    print(f"ddpmkit: classifier {report.folder}")
    return 0
