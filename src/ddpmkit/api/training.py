"""``ddpmkit.train``: a run configured from a data name, a preset, a file and keyword overrides,
trained with the automatic sizing, time plan, resume and faults of ``ddpmkit train`` (which calls
it), and returned as a loaded `ddpmkit.api.model.Model`."""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path
from typing import Any

from tqdm import tqdm

from ddpmkit.api.model import Model, load
from ddpmkit.config.parsing import from_dict, merge, read_config_file, upgrade
from ddpmkit.config.presets import PRESETS, QUICK_START
from ddpmkit.config.schema import RunConfig
from ddpmkit.data.config import SOURCES
from ddpmkit.networks import MLPConfig, UNetConfig
from ddpmkit.progress import ProgressBar, reporter
from ddpmkit.storage.checkpoints import find_checkpoints
from ddpmkit.storage.diffusers_folders import export_refusal
from ddpmkit.training.budget import Plan
from ddpmkit.training.loop import Trainer
from ddpmkit.training.sizing import Sizing
from ddpmkit.training.stopping import TrainingStopped

SECTIONS = ("data", "model", "diffusion", "train", "sample")
"""The sections of a run's configuration (``RunConfig``), each a keyword of `train`."""
DataInput = str | Path | dict[str, Any] | None
"""What `train` learns: a source name, an image folder or array file, or a data section."""


def train(
    data: DataInput = None,
    *,
    out: str | Path | None = None,
    minutes: float | None = None,
    preset: str | None = None,
    config: str | Path | dict[str, Any] | None = None,
    resume: bool = False,
    progress: bool = True,
    verbose: bool | None = None,
    **overrides: Any,
) -> Model:
    """Train a diffusion model and return it loaded from its last checkpoint (its sampling
    weights, usually EMA), exactly as ``ddpmkit train`` does.

    With no preset, config or model options it starts from the quick recipe: a network sized to
    the data and the time budget, measured on this device. Settings apply in order: the resumed
    run's, ``preset``, ``config``, then ``data``, ``minutes`` and ``overrides``.

    Args:
        data: a source name (``"digits"``, ``"toy2d"``, ``"mnist"``, …), an image folder, an
            .npy/.npz array file, or a dict of ``data`` options; None keeps the preset's.
        out: the run folder (default: a new ``runs/<preset>[-N]``; under torchrun required).
        minutes: a time budget: the run times its first steps and plans the rest to fit.
        preset: a name of ``ddpmkit.PRESETS``.
        config: a .toml/.yaml/.json file or a dict of sections.
        resume: continue the run in ``out`` bit for bit (with more ``train.steps``, say).
        progress: draw the progress bars of training and of the sample grids.
        verbose: print the run's lines (where, the sizing, the plan, the files written);
            None: as ``progress``, so ``progress=False`` is silent.
        overrides: sections as dicts (``train={"steps": 500}``, ``model={"unet": {...}}``) or
            dotted keys (``**{"train.steps": 500}``).
    """
    if out is None and int(os.environ.get("WORLD_SIZE", 1)) > 1:
        raise ValueError(
            "under torchrun every process must name the same run folder: pass --out (out= in Python)"
        )
    run_dir = Path(out) if out is not None else new_run_folder(preset, resume)
    values = nested(overrides)
    if data is not None:
        values = merge(values, {"data": data_section(data)})
    if minutes is not None:
        values = merge(values, {"train": {"minutes": minutes}})
    resolved = run_config(run_dir, values, preset=preset, config=config, resume=resume)
    trainer = Trainer(resolved, run_dir, resume=resume)
    checkpoint = fit(
        trainer, run_dir, bars=progress, lines=progress if verbose is None else verbose
    )
    return load(checkpoint, str(trainer.device))


def run_config(
    run_dir: Path,
    overrides: dict[str, Any],
    *,
    preset: str | None = None,
    config: str | Path | dict[str, Any] | None = None,
    resume: bool = False,
) -> RunConfig:
    """Defaults <- the resumed run's config <- preset <- config <- overrides, checked key by key.

    A run that names no model (no preset, config or ``model.kind``/``unet``/``mlp``) starts from
    QUICK_START: an automatically sized network and the recipe measured for short runs.

    Args:
        run_dir: the run folder (its ``config.json`` is the base when resuming).
        overrides: nested sections of options.
        preset: a name of ``PRESETS``.
        config: a config file or a dict of sections.
        resume: start from the run's stored config.
    """
    values: dict[str, Any] = {}
    if resume and (run_dir / "config.json").is_file():
        values = upgrade(read_config_file(run_dir / "config.json"))
    if preset is not None:
        if preset not in PRESETS:
            raise ValueError(f"preset {preset!r}: choose one of {', '.join(sorted(PRESETS))}")
        values = merge(values, PRESETS[preset])
    if config is not None:
        values = merge(values, config if isinstance(config, dict) else read_config_file(config))
    values = merge(values, overrides)
    named = {"kind", "unet", "mlp"} & set(overrides.get("model", {}))
    if not (resume or preset or config or named):
        values = merge(QUICK_START, values)  # no model named: sized, with the quick recipe
    where = str(config) if isinstance(config, (str, Path)) else "config"
    return from_dict(RunConfig, values, where)


def nested(overrides: dict[str, Any], sections: tuple[str, ...] = SECTIONS) -> dict[str, Any]:
    """Keyword overrides as nested sections: ``train={"steps": 5}`` and ``**{"train.steps": 5}``
    alike; a name that is none of ``sections`` is an error naming them."""
    values: dict[str, Any] = {}
    for key, value in overrides.items():
        section, *path = key.split(".")
        if section not in sections:
            raise ValueError(f"unknown option {key!r}: options are sections {', '.join(sections)}")
        for name in reversed(path):
            value = {name: value}
        values = merge(values, {section: value})
    return values


def data_section(data: str | Path | dict[str, Any]) -> dict[str, Any]:
    """The ``data`` options a name stands for: a source, an image folder or an array file."""
    if isinstance(data, dict):
        return data
    if str(data) in SOURCES:
        return {"source": str(data)}
    path = Path(data)
    if path.is_dir():
        return {"source": "folder", "path": str(path)}
    if path.is_file():
        return {"source": "array", "path": str(path)}
    raise FileNotFoundError(f"data {data}: no such file or folder, nor a source of {SOURCES}")


def new_run_folder(preset: str | None, resume: bool) -> Path:
    """The first of runs/NAME, runs/NAME-2, … that is free (a new run never overwrites)."""
    if resume:
        raise ValueError("resuming needs the run folder to continue (out / --out)")
    base = Path("runs") / (preset or "run")
    candidates = (base.with_name(f"{base.name}-{i}") if i > 1 else base for i in range(1, 10_000))
    return next(path for path in candidates if not path.exists())


def fit(trainer: Trainer, run_dir: Path, *, bars: bool, lines: bool) -> Path:
    """Run ``trainer`` with progress ``bars`` and the run's report ``lines`` (rank 0 only); a
    Ctrl-C prints how to continue and is raised again."""
    main = trainer.processes.main
    quiet = not (bars and main)
    say = reporter(lines and main)
    say(describe_start(trainer, run_dir))
    if trainer.sizing is not None:
        say(describe_sizing(trainer.sizing))
    refusal = export_refusal(trainer.config)
    if refusal is not None and main and trainer.step == 0:  # said once, when the run starts
        warnings.warn(f"this model will not export to diffusers: {refusal}", stacklevel=3)
    planning = trainer.requested.train.minutes is not None and trainer.plan is None
    done_before = not planning and trainer.step >= trainer.config.train.steps
    total = None if planning else trainer.config.train.steps
    bar = tqdm(total=total, initial=trainer.step, disable=quiet, desc="train")
    first_step = trainer.step + 1
    with bar, ProgressBar("sample", "step", disable=quiet) as sampling:

        def on_step(step: int, metrics: dict[str, Any]) -> None:
            bar.update(1)
            if trainer.plan is not None and bar.total != trainer.plan.train.steps:
                bar.total = trainer.plan.train.steps  # a train.minutes run has planned
                if lines and main:
                    bar.write(describe_plan(trainer.plan))
            log_every = trainer.config.train.log_every  # a train.minutes run plans it
            if step % log_every == 0 or step == first_step:  # reading the loss waits
                bar.set_postfix(loss=f"{float(metrics['loss']):.4f}", refresh=False)

        try:
            checkpoint = trainer.fit(on_step, sampling)
        except KeyboardInterrupt as stop:
            bar.close()
            by = f" by {stop}" if isinstance(stop, TrainingStopped) else ""
            message = interrupted(trainer.step, find_checkpoints(run_dir), run_dir, by)
            print(message, file=sys.stderr)
            raise
    if done_before:  # nothing was trained: say so instead of listing the outputs as new
        say(f"ddpmkit: nothing to train: the run is at step {trainer.step}, train.steps is "
            f"{trainer.config.train.steps}; its outputs were written before")  # fmt: skip
    say(f"ddpmkit: checkpoint {checkpoint}")
    for picture in sorted((run_dir / "samples").glob("*.png")):
        say(f"ddpmkit: samples   {picture}")
    say(f"ddpmkit: log       {run_dir / 'log.csv'}")
    return checkpoint


def interrupted(step: int, checkpoints: list[Path], run_dir: Path, by: str = "") -> str:
    """What a stop (Ctrl-C, SIGTERM ``by``) left behind, and the command that continues the run."""
    saved = f"its last checkpoint is {checkpoints[-1].name}" if checkpoints else "no checkpoint yet"
    return (
        f"ddpmkit train: interrupted{by} at step {step}; {saved}. "
        f"Continue with: ddpmkit train --resume --out {run_dir}"
    )


def describe_start(trainer: Trainer, run_dir: Path) -> str:
    """Where, on what and how big: the run's first line."""
    processes = trainer.processes
    parameters = sum(p.numel() for p in trainer.network.parameters())
    where = f"{processes.world} processes" if processes.distributed else str(trainer.device)
    precision = trainer.execution.describe()
    return f"ddpmkit: training in {run_dir} on {where}, {precision}, {parameters:,} parameters"


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
