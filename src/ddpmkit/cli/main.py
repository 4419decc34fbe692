"""The ``ddpmkit`` command: options -> config dataclasses -> library calls; owns the progress bars."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from ddpmkit.cli.restoration import add_restoration_commands
from ddpmkit.config.builders import build_schedule, pick_device
from ddpmkit.config.parsing import (
    ConfigError,
    add_config_flags,
    from_dict,
    merge,
    overrides_from_args,
    read_config_file,
    to_dict,
)
from ddpmkit.config.presets import PRESETS
from ddpmkit.config.schema import RunConfig, SampleConfig
from ddpmkit.core.schedules import REVERSE_VARIANCES
from ddpmkit.data import DataConfig, load_data, stack_items
from ddpmkit.data.config import SOURCES
from ddpmkit.guidance.classifier_training import noisy_accuracy, train_noisy_classifier
from ddpmkit.likelihood.report import evaluate_nll, quantization_levels
from ddpmkit.outputs import refuse_existing, save_npz, save_picture, save_terms_plot
from ddpmkit.pipeline.checkpoints import read_config, resolve_checkpoint
from ddpmkit.pipeline.classifier import build_classifier, load_classifier, save_classifier
from ddpmkit.pipeline.generation import Conditioning, generate
from ddpmkit.pipeline.model import load_model
from ddpmkit.training.loop import Trainer


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ddpmkit`` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (ConfigError, ValueError, FileExistsError, FileNotFoundError) as error:
        print(f"ddpmkit {args.command}: error: {error}", file=sys.stderr)
        return 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ddpmkit", description="Denoising diffusion probabilistic models: train and sample."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    _add_train(commands)
    _add_sample(commands)
    _add_eval(commands)
    _add_train_classifier(commands)
    add_restoration_commands(commands)
    presets = commands.add_parser("presets", help="list the presets and print one's settings")
    presets.add_argument("name", nargs="?", choices=sorted(PRESETS), help="preset to print")
    presets.set_defaults(run=run_presets)
    return parser


def _add_train(commands: Any) -> None:
    train = commands.add_parser(
        "train",
        help="train a model (a preset and/or a config file, then --section.key overrides)",
        description="Train a diffusion model. Settings are applied in order: defaults, --preset, "
        "--config, then each --section.key VALUE flag. Tuples are comma-separated (1,2,2).",
    )
    train.add_argument("--preset", choices=sorted(PRESETS), help="a named starting configuration")
    train.add_argument("--config", type=Path, help="a .toml, .yaml or .json config file")
    train.add_argument("--out", type=Path, help="run folder (default: a new runs/<preset>[-N])")
    train.add_argument("--resume", action="store_true", help="continue the run in --out")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    add_config_flags(train, RunConfig)
    train.set_defaults(run=run_train)


def _add_sample(commands: Any) -> None:
    sample = commands.add_parser(
        "sample",
        help="draw samples from a checkpoint into a PNG and an .npz",
        description="Draw samples from a checkpoint (or a run folder's latest checkpoint). "
        "Sample options default to those stored with the checkpoint.",
    )
    sample.add_argument("checkpoint", type=Path, help="checkpoint folder or run folder")
    sample.add_argument(
        "--out", type=Path, help="output PNG (default: <run>/samples/<ckpt>-seed<S>.png)"
    )
    sample.add_argument(
        "--npz", type=Path, help="also write the samples here (default: beside --out)"
    )
    sample.add_argument(
        "--trajectory", type=Path, help="write the trajectory x_T … x_0 to this .npz"
    )
    sample.add_argument("--device", default="auto", help="auto, cpu, cuda, …")
    sample.add_argument("--quiet", action="store_true", help="no progress bar")
    add_config_flags(sample, SampleConfig)
    sample.set_defaults(run=run_sample)


def _add_train_classifier(commands: Any) -> None:
    parser = commands.add_parser(
        "train-classifier",
        help="train a time-aware classifier p(y|x_t, t) on a run's data, for classifier guidance",
        description="Trains a noisy classifier (Dhariwal & Nichol 2021) on the labelled training "
        "data of a run, with the run's noise schedule; sample with "
        "`ddpmkit sample RUN --classifier FOLDER --classifier_scale S --label Y`.",
    )
    parser.add_argument(
        "checkpoint", type=Path, help="run folder or checkpoint (its data and schedule)"
    )
    parser.add_argument("--steps", type=int, default=2000, help="optimizer steps")
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    parser.add_argument("--base_channels", type=int, default=32, help="width of the classifier")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="classifier folder (default: <run>/classifier)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, …")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(run=run_train_classifier)


def _add_eval(commands: Any) -> None:
    evaluate = commands.add_parser(
        "eval",
        help="bits/dim of held-out data: the variational bound or the probability-flow ODE",
        description="Negative log-likelihood in bits/dim, with a 95%% confidence interval over the "
        "evaluated samples, printed and written to a JSON report (and, for vlb, a PNG of L_t).",
    )
    evaluate.add_argument("checkpoint", type=Path, help="checkpoint folder or run folder")
    evaluate.add_argument("--nll", choices=("vlb", "ode"), default="vlb", help="which likelihood")
    evaluate.add_argument(
        "--data",
        help="what to evaluate: the run's data (default), a source name such as digits, or an "
        "image folder / .npy / .npz file (all of its items, at the model's size)",
    )
    evaluate.add_argument(
        "--split", choices=("heldout", "train"), default="heldout", help="split of the run's data"
    )
    evaluate.add_argument("--num_samples", type=int, default=100, help="items of the split to use")
    evaluate.add_argument("--batch_size", type=int, default=100)
    evaluate.add_argument(
        "--num_levels", type=int, help="quantization levels (digits 17, else 256)"
    )
    evaluate.add_argument(
        "--variance",
        choices=REVERSE_VARIANCES,
        default="auto",
        help="σ_t² of the bound: learned Σ_θ if the model has one (auto), β̃_t, β_t",
    )
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.add_argument(
        "--out", type=Path, help="JSON report (default: <run>/eval/<ckpt>-<nll>.json)"
    )
    evaluate.add_argument("--device", default="auto", help="auto, cpu, cuda, …")
    evaluate.add_argument("--quiet", action="store_true", help="no progress bar")
    evaluate.set_defaults(run=run_eval)


def train_config_from_args(args: argparse.Namespace, run_dir: Path) -> RunConfig:
    """Defaults <- the resumed run's config <- preset <- config file <- flags, checked key by key."""
    values: dict[str, Any] = {}
    if args.resume and (run_dir / "config.json").is_file():
        values = read_config_file(run_dir / "config.json")
    if args.preset:
        values = merge(values, PRESETS[args.preset])
    if args.config:
        values = merge(values, read_config_file(args.config))
    values = merge(values, overrides_from_args(args))
    return from_dict(RunConfig, values, str(args.config or "config"))


def _run_dir(args: argparse.Namespace) -> Path:
    """--out, or the first of runs/NAME, runs/NAME-2, … that is free (a new run never overwrites)."""
    if args.out is not None:
        return args.out
    if args.resume:
        raise ValueError("--resume needs --out RUN_FOLDER, the run to continue")
    base = Path("runs") / (args.preset or "run")
    candidates = (base.with_name(f"{base.name}-{i}") if i > 1 else base for i in range(1, 10_000))
    return next(path for path in candidates if not path.exists())


def run_train(args: argparse.Namespace) -> int:
    run_dir = _run_dir(args)
    config = train_config_from_args(args, run_dir)
    trainer = Trainer(config, run_dir, resume=args.resume)
    print(
        f"ddpmkit: training in {run_dir} on {trainer.device} "
        f"({sum(p.numel() for p in trainer.network.parameters()):,} parameters)"
    )
    bar = tqdm(total=config.train.steps, initial=trainer.step, disable=args.quiet, desc="train")
    with bar, _ProgressBar("sample", "step", disable=args.quiet) as sampling:

        def on_step(step: int, metrics: dict[str, float]) -> None:
            bar.update(1)
            bar.set_postfix(loss=f"{metrics['loss']:.4f}", refresh=False)

        checkpoint = trainer.fit(on_step, sampling)
    print(f"ddpmkit: checkpoint {checkpoint}")
    for picture in sorted((run_dir / "samples").glob("*.png")):
        print(f"ddpmkit: samples   {picture}")
    print(f"ddpmkit: log       {run_dir / 'log.csv'}")
    return 0


def run_sample(args: argparse.Namespace) -> int:
    checkpoint = resolve_checkpoint(args.checkpoint)
    config = read_config(checkpoint)
    overrides = overrides_from_args(args)
    sample = from_dict(SampleConfig, merge(to_dict(config.sample), overrides), "sample options")
    out = (
        args.out
        or checkpoint.parent.parent / "samples" / f"{checkpoint.name}-seed{sample.seed}.png"
    )
    npz = args.npz or out.with_suffix(".npz")
    refuse_existing(out, npz, args.trajectory)
    model = load_model(checkpoint, args.device, "ema" if sample.use_ema else "model")
    classifier = None
    if sample.classifier is not None:
        classifier = load_classifier(sample.classifier)
        classifier.network.to(next(model.network.parameters()).device)
    conditioning = Conditioning.of(config.model, classifier, model.schedule)
    with _ProgressBar("sample", "step", disable=args.quiet) as progress:
        result = generate(
            model.network, model.schedule, config.diffusion, sample, model.shape,
            conditioning=conditioning, record_trajectory=args.trajectory is not None,
            progress=progress,
        )  # fmt: skip
    print(f"ddpmkit: samples {save_picture(result.samples, out)}")
    print(f"ddpmkit: arrays  {save_npz(result.samples, npz)}")
    if args.trajectory is not None and result.trajectory is not None:
        save_npz(torch.stack(result.trajectory, dim=1), args.trajectory)
        print(f"ddpmkit: trajectory (samples, steps, …) {args.trajectory}")
    return 0


def run_train_classifier(args: argparse.Namespace) -> int:
    checkpoint = resolve_checkpoint(args.checkpoint)
    config = read_config(checkpoint)
    out = args.out or checkpoint.parent.parent / "classifier"
    refuse_existing(out)
    train, heldout = load_data(config.data, "train"), load_data(config.data, "heldout")
    if train.num_classes is None:
        raise ValueError(
            f"{args.checkpoint}: the run's data have no labels to train a classifier on"
        )
    x, labels = stack_items(train.dataset)
    torch.manual_seed(args.seed)
    network, architecture = build_classifier(train.shape, train.num_classes, args.base_channels)
    network = network.to(pick_device(args.device))
    schedule = build_schedule(config.diffusion)
    generator = torch.Generator().manual_seed(args.seed)
    bar = tqdm(total=args.steps, desc="classifier", disable=args.quiet)
    with bar:
        train_noisy_classifier(
            network, schedule, x, labels, steps=args.steps, batch_size=args.batch_size,
            lr=args.lr, generator=generator,
            on_step=lambda _step, loss: (bar.update(1), bar.set_postfix(loss=f"{loss:.3f}")),
        )  # fmt: skip
    x_heldout, labels_heldout = stack_items(heldout.dataset)
    for step in (0, schedule.num_steps // 4, schedule.num_steps // 2):
        accuracy = noisy_accuracy(network, schedule, x_heldout, labels_heldout, step, generator)
        print(f"ddpmkit: held-out accuracy at t = {step}: {accuracy:.3f}")
    print(f"ddpmkit: classifier {save_classifier(out, network, architecture, config.diffusion)}")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    checkpoint = resolve_checkpoint(args.checkpoint)
    config = read_config(checkpoint)
    out = args.out or checkpoint.parent.parent / "eval" / f"{checkpoint.name}-{args.nll}.json"
    plot = out.with_suffix(".png")
    refuse_existing(out, plot)
    model = load_model(checkpoint, args.device)
    data_config, split = _eval_data(config, args.data, args.split, model.shape)
    data = load_data(data_config, split)
    if data.shape != model.shape:
        raise ValueError(
            f"--data {args.data}: items have shape {data.shape} but the model was trained on "
            f"{model.shape}"
        )
    num_samples = min(args.num_samples, len(data.dataset))
    if num_samples < args.num_samples:
        print(f"ddpmkit: the data hold {num_samples} items; evaluating all of them")
    levels = args.num_levels or quantization_levels(data_config.source)
    with _ProgressBar("eval", "sample", disable=args.quiet) as progress:
        report = evaluate_nll(
            model.denoiser, model.schedule, data.dataset, args.nll, num_samples=num_samples,
            batch_size=args.batch_size, num_levels=levels, variance=args.variance, seed=args.seed,
            progress=progress,
        )  # fmt: skip
    print(f"ddpmkit: {args.nll} {report.bits_per_dim:.4f} ± {report.ci95:.4f} bits/dim "
          f"(95% CI, {report.num_samples} samples, {report.nfe} NFE, {report.seconds:.1f} s)")  # fmt: skip
    for row in report.rate_distortion_table():
        print(f"ddpmkit:   {row}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    print(f"ddpmkit: report {out}")
    if report.terms_bpd is not None:
        print(f"ddpmkit: L_t plot {save_terms_plot(report.terms_bpd, plot)}")
    return 0


def _eval_data(
    config: RunConfig, data: str | None, split: str, shape: tuple[int, ...]
) -> tuple[DataConfig, str]:
    """The data to evaluate and its split: the run's own, a named source, or a file or folder."""
    if data is None:
        return config.data, split
    if data in SOURCES:
        return dataclasses.replace(config.data, source=data, path=None), split
    path = Path(data)
    if not path.exists():
        raise FileNotFoundError(f"--data {data}: no such file or folder (nor a source {SOURCES})")
    if path.is_dir():
        return DataConfig(
            source="folder", path=data, image_size=shape[1:], channels=shape[0],
            heldout_fraction=0.0,
        ), "train"  # fmt: skip
    return DataConfig(source="array", path=data, heldout_fraction=0.0), "train"


class _ProgressBar:
    """A progress callback (done, total) drawing a tqdm bar, opened on its first call."""

    def __init__(self, desc: str, unit: str, disable: bool) -> None:
        self.desc, self.unit, self.disable = desc, unit, disable
        self.bar: tqdm | None = None

    def __enter__(self) -> _ProgressBar:
        return self

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None or self.bar.total != total or done < self.bar.n:
            self.close()
            self.bar = tqdm(total=total, desc=self.desc, unit=self.unit, disable=self.disable)
        self.bar.update(done - self.bar.n)
        if done == total:
            self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_presets(args: argparse.Namespace) -> int:
    if args.name is None:
        for name in sorted(PRESETS):
            print(name)
        return 0
    config = from_dict(RunConfig, PRESETS[args.name], f"preset {args.name}")
    print(json.dumps(to_dict(config), indent=2))
    return 0
