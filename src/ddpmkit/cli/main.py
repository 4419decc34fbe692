"""The ``ddpmkit`` command: parses the command line and runs one command.

Each command lives in a module of its own (``cli/train.py``, ``cli/sample.py``, …) and is imported
only when it runs or its help is asked for, so ``ddpmkit --help`` starts without PyTorch.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from collections.abc import Callable, Sequence

AddArguments = Callable[[argparse.ArgumentParser], None]


def version() -> str:
    """``ddpmkit <version>``: the ``__version__`` of the ddpmkit package, which Python imported
    before this module. Read as an attribute rather than by ``from ddpmkit import``: the
    architecture test keeps the layers off the package's facade of lazily imported names."""
    return f"ddpmkit {importlib.import_module('ddpmkit').__version__}"


def _train(parser: argparse.ArgumentParser) -> None:
    from ddpmkit.cli import train

    parser.description = train.DESCRIPTION
    train.add_arguments(parser)


def _sample(parser: argparse.ArgumentParser) -> None:
    from ddpmkit.cli import sample

    parser.description = sample.DESCRIPTION
    sample.add_arguments(parser)


def _eval(parser: argparse.ArgumentParser) -> None:
    from ddpmkit.cli import evaluate

    parser.description = evaluate.DESCRIPTION
    evaluate.add_arguments(parser)


def _plot(parser: argparse.ArgumentParser) -> None:
    from ddpmkit.cli import plot

    parser.description = plot.DESCRIPTION
    plot.add_arguments(parser)


def _train_autoencoder(parser: argparse.ArgumentParser) -> None:
    from ddpmkit.cli import autoencoder

    parser.description = autoencoder.DESCRIPTION
    autoencoder.add_arguments(parser)


def _train_classifier(parser: argparse.ArgumentParser) -> None:
    from ddpmkit.cli import classifier

    parser.description = classifier.DESCRIPTION
    classifier.add_arguments(parser)


def _inpaint(parser: argparse.ArgumentParser) -> None:
    from ddpmkit.cli import restoration

    parser.description = restoration.INPAINT
    restoration.add_inpaint(parser)


def _restore(parser: argparse.ArgumentParser) -> None:
    from ddpmkit.cli import restoration

    parser.description = restoration.RESTORE
    restoration.add_restore(parser)


def _edit(parser: argparse.ArgumentParser) -> None:
    from ddpmkit.cli import restoration

    parser.description = restoration.EDIT
    restoration.add_edit(parser)


def _import_diffusers(parser: argparse.ArgumentParser) -> None:
    from ddpmkit.cli import diffusers_io

    parser.description = diffusers_io.IMPORT
    diffusers_io.add_import(parser)


def _export_diffusers(parser: argparse.ArgumentParser) -> None:
    from ddpmkit.cli import diffusers_io

    parser.description = diffusers_io.EXPORT
    diffusers_io.add_export(parser)


def _presets(parser: argparse.ArgumentParser) -> None:
    from ddpmkit.cli import presets

    parser.description = presets.DESCRIPTION
    presets.add_arguments(parser)


COMMANDS: dict[str, tuple[str, AddArguments]] = {
    "train": (
        "train a model (a preset and/or a config file, then --section.key overrides)",
        _train,
    ),
    "sample": ("draw samples from a checkpoint into a PNG and an .npz", _sample),
    "eval": ("bits/dim of held-out data: the variational bound or the probability-flow ODE", _eval),
    "plot": (
        "pictures of a run: loss curves, samples over training, forward and reverse strips",
        _plot,
    ),
    "train-autoencoder": (
        "train the autoencoder of latent diffusion; then train --autoencoder FOLDER",
        _train_autoencoder,
    ),
    "train-classifier": (
        "train a time-aware classifier p(y|x_t, t) on a run's data, for classifier guidance",
        _train_classifier,
    ),
    "inpaint": ("fill in the masked region of an image", _inpaint),
    "restore": ("super-resolution, deblurring or inpainting of an image", _restore),
    "edit": ("SDEdit: noise an image part-way and denoise it (image-to-image)", _edit),
    "import-diffusers": (
        "a diffusers DDPMPipeline (or UNet2DModel) folder -> a ddpmkit checkpoint",
        _import_diffusers,
    ),
    "export-diffusers": (
        "a ddpmkit checkpoint -> a diffusers DDPMPipeline folder",
        _export_diffusers,
    ),
    "presets": ("list the presets and print one's settings", _presets),
}
"""Every command: its one-line help and the function that adds its arguments."""

USAGES = {
    "train": "%(prog)s [-h] [--preset NAME] [--config FILE] [--out RUN] [--resume]\n"
    "       [--autoencoder FOLDER] [--quiet] [--section.key VALUE ...]",
    "sample": "%(prog)s [-h] [--out PNG] [--device DEVICE] [--quiet] [--KEY VALUE ...]\n"
    "       checkpoint",
    "train-autoencoder": "%(prog)s [-h] --out FOLDER [--config FILE] [--quiet]\n"
    "       [--section.key VALUE ...]",
}
"""Short usage lines of the commands with one flag per config option, which argparse would list
one by one; their --help shows every flag, grouped by section."""


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser with every command's arguments, or only those of command ``only`` (lazily):
    the others' arguments are added only when their help or command is asked for."""
    parser = argparse.ArgumentParser(
        prog="ddpmkit",
        description="Denoising diffusion probabilistic models: train and sample.",
        allow_abbrev=False,  # --train.step must not silently mean --train.steps
    )
    parser.add_argument("--version", action="version", version=version(), help="print the version")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, (summary, add_arguments) in COMMANDS.items():
        command = commands.add_parser(
            name,
            help=summary,
            description=summary,
            usage=USAGES.get(name),
            allow_abbrev=False,
        )
        if only is None or only == name:
            add_arguments(command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ddpmkit`` command; ``argv``: its arguments (default: sys.argv's)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    requested = next((word for word in argv if not word.startswith("-")), "")
    args = build_parser(requested if requested in COMMANDS else "").parse_args(argv)

    def one_line(message: Warning | str, *_: object, **__: object) -> None:
        print(f"ddpmkit {args.command}: warning: {message}", file=sys.stderr)

    with warnings.catch_warnings():  # restores Python's warning display on the way out
        warnings.showwarning = one_line
        try:
            code: int = args.run(args)
            return code
        except (
            ValueError,
            FileExistsError,
            FileNotFoundError,
            FloatingPointError,
            ImportError,  # an optional extra that is not installed: the message says which
        ) as error:
            print(f"ddpmkit {args.command}: error: {error}", file=sys.stderr)
            return 2
