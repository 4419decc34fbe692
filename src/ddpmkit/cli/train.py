"""``ddpmkit train``: a preset and/or config file, then ``--section.key`` overrides -> a run folder."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ddpmkit.cli.progress import ProgressBar, reporter
from ddpmkit.config.parsing import (
    add_config_flags,
    from_dict,
    merge,
    overrides_from_args,
    read_config_file,
    upgrade,
)
from ddpmkit.config.presets import PRESETS, QUICK_START
from ddpmkit.config.schema import RunConfig
from ddpmkit.networks import MLPConfig, UNetConfig

if TYPE_CHECKING:
    from ddpmkit.training.budget import Plan
    from ddpmkit.training.sizing import Sizing

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


def config_from_args(args: argparse.Namespace, run_dir: Path) -> RunConfig:
    """Defaults <- the resumed run's config <- preset <- config file <- flags, checked key by key.

    A command that names no model (no preset, file or --model.kind/unet/mlp flag) starts from
    QUICK_START: an automatically sized network and the recipe measured for short runs.
    """
    values: dict[str, Any] = {}
    if args.resume and (run_dir / "config.json").is_file():
        values = upgrade(read_config_file(run_dir / "config.json"))
    if args.preset:
        values = merge(values, PRESETS[args.preset])
    if args.config:
        values = merge(values, read_config_file(args.config))
    overrides = overrides_from_args(args)
    values = merge(values, overrides)
    named = {"kind", "unet", "mlp"} & set(overrides.get("model", {}))
    if not (args.resume or args.preset or args.config or named):
        values = merge(QUICK_START, values)  # no model named: sized, with the quick recipe
    if args.autoencoder is not None:
        values = merge(values, {"model": {"autoencoder": args.autoencoder}})
    return from_dict(RunConfig, values, str(args.config or "config"))


def run_folder(args: argparse.Namespace) -> Path:
    """--out, or the first of runs/NAME, runs/NAME-2, … that is free (a new run never overwrites)."""
    if args.out is not None:
        return Path(args.out)
    if args.resume:
        raise ValueError("--resume needs --out RUN_FOLDER, the run to continue")
    base = Path("runs") / (args.preset or "run")
    candidates = (base.with_name(f"{base.name}-{i}") if i > 1 else base for i in range(1, 10_000))
    return next(path for path in candidates if not path.exists())


def interrupted(step: int, checkpoints: list[Path], run_dir: Path) -> str:
    """What a Ctrl-C left behind, and the command that continues the run."""
    saved = f"its last checkpoint is {checkpoints[-1].name}" if checkpoints else "no checkpoint yet"
    return (
        f"ddpmkit train: interrupted at step {step}; {saved}. "
        f"Continue with: ddpmkit train --resume --out {run_dir}"
    )


def describe_sizing(sizing: Sizing) -> str:
    """One line on the automatically chosen network."""
    return (
        f"ddpmkit: model sized for the data and {sizing.budget_seconds / 60:g} min: the "
        f"{sizing.name} {describe_network(sizing.network)}, "
        f"{sizing.parameters:,} parameters, {sizing.seconds_per_step:.3f} s/step measured "
        f"at batch {sizing.batch} per process, ~{sizing.expected_steps:,} steps "
        f"(pick another with --model.{sizing.kind}.* flags or a --preset)"
    )


def describe_network(network: UNetConfig | MLPConfig) -> str:
    """A U-Net's levels, channels and attention, or an MLP's width and depth."""
    if isinstance(network, MLPConfig):
        return (
            f"MLP on the flattened image ({network.dim} values; {network.num_blocks} residual "
            f"blocks of width {network.hidden})"
        )
    attention = ",".join(map(str, network.attention_resolutions)) or "none"
    patches = (
        f"{network.patch_size}×{network.patch_size} patches, " if network.patch_size > 1 else ""
    )
    return (
        f"U-Net ({patches}{network.base_channels} channels × "
        f"{','.join(map(str, network.channel_mults))}, "
        f"{network.layers_per_block} resnet(s) per level, attention at {attention})"
    )


def describe_plan(plan: Plan) -> str:
    """One line on what a time budget became."""
    train = plan.train
    return (
        f"ddpmkit: planned {train.steps:,} steps for {train.minutes:g} min "
        f"({plan.seconds_per_step:.3f} s/step measured, {plan.sample_seconds:.0f} s kept for the "
        f"samples): warm-up {train.warmup_steps}, EMA half-life {plan.ema_half_life:.0f} steps "
        f"(decay {train.ema_decay:.5f}), a checkpoint every {train.checkpoint_every}"
    )


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ddpmkit.storage.checkpoints import find_checkpoints
    from ddpmkit.training.loop import Trainer

    if args.out is None and int(os.environ.get("WORLD_SIZE", 1)) > 1:
        raise ValueError("under torchrun every process must name the same run folder: pass --out")
    run_dir = run_folder(args)
    config = config_from_args(args, run_dir)
    trainer = Trainer(config, run_dir, resume=args.resume)
    processes = trainer.processes
    quiet = args.quiet or not processes.main  # one progress bar and one report, from rank 0
    say = reporter(processes.main)
    parameters = sum(p.numel() for p in trainer.network.parameters())
    precision = trainer.execution.describe()
    where = f"{processes.world} processes" if processes.distributed else str(trainer.device)
    say(f"ddpmkit: training in {run_dir} on {where}, {precision}, {parameters:,} parameters")
    if trainer.sizing is not None:
        say(describe_sizing(trainer.sizing))
    planning = config.train.minutes is not None and trainer.plan is None
    total = None if planning else trainer.config.train.steps
    bar = tqdm(total=total, initial=trainer.step, disable=quiet, desc="train")
    first_step = trainer.step + 1
    with bar, ProgressBar("sample", "step", disable=quiet) as sampling:

        def on_step(step: int, metrics: dict[str, Any]) -> None:
            bar.update(1)
            if trainer.plan is not None and bar.total != trainer.plan.train.steps:
                bar.total = trainer.plan.train.steps  # a train.minutes run has planned
                if not quiet:
                    bar.write(describe_plan(trainer.plan))
            if step % config.train.log_every == 0 or step == first_step:  # reading waits
                bar.set_postfix(loss=f"{float(metrics['loss']):.4f}", refresh=False)

        try:
            checkpoint = trainer.fit(on_step, sampling)
        except KeyboardInterrupt:
            bar.close()
            print(interrupted(trainer.step, find_checkpoints(run_dir), run_dir), file=sys.stderr)
            return 130  # the shell's code for a stop by Ctrl-C (128 + SIGINT)
    say(f"ddpmkit: checkpoint {checkpoint}")
    for picture in sorted((run_dir / "samples").glob("*.png")):
        say(f"ddpmkit: samples   {picture}")
    say(f"ddpmkit: log       {run_dir / 'log.csv'}")
    return 0
