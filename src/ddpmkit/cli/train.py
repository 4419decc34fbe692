"""``ddpmkit train``: a preset and/or config file, then ``--section.key`` overrides -> a run folder
(the flags handed to `ddpmkit.train`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ddpmkit.config.parsing import add_config_flags, merge, overrides_from_args
from ddpmkit.config.presets import PRESETS
from ddpmkit.config.schema import RunConfig
from ddpmkit.training.stopping import TrainingStopped

DESCRIPTION = (
    "Train a diffusion model. Settings are applied in order: defaults, --preset, --config, then "
    "each --section.key VALUE flag. Tuples are comma-separated (1,2,2)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", choices=sorted(PRESETS), help="a named starting configuration")
    parser.add_argument("--config", type=Path, help="a .toml, .yaml or .json config file")
    parser.add_argument("--out", type=Path, help="run folder (default: a new runs/<preset>[-N])")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out")
    parser.add_argument(
        "--autoencoder",
        metavar="FOLDER",
        help="latent diffusion: learn this autoencoder's latents (same as --model.autoencoder)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_config_flags(parser, RunConfig)
    parser.set_defaults(run=run)


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The ``--section.key`` flags (and ``--autoencoder``) as nested sections."""
    values = overrides_from_args(args)
    if args.autoencoder is not None:
        values = merge(values, {"model": {"autoencoder": args.autoencoder}})
    return values


def config_from_args(args: argparse.Namespace, run_dir: Path) -> RunConfig:
    """The run's configuration from the command line (`ddpmkit.api.training.run_config`)."""
    from ddpmkit.api.training import run_config

    return run_config(
        run_dir, overrides(args), preset=args.preset, config=args.config, resume=args.resume
    )


def run(args: argparse.Namespace) -> int:
    from ddpmkit.api.training import train

    try:
        train(
            out=args.out, preset=args.preset, config=args.config, resume=args.resume,
            progress=not args.quiet, verbose=True, **overrides(args),
        )  # fmt: skip
    except TrainingStopped as stop:  # SIGTERM or Ctrl-C between steps: the step is saved
        return stop.exit_code
    except KeyboardInterrupt:
        return (
            130  # the shell's code for a stop by Ctrl-C (128 + SIGINT); the run said how to go on
        )
    return 0
