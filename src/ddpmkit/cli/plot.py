"""``ddpmkit plot``: pictures of a run folder: loss curves, samples over training, the forward
process and (given one) a reverse trajectory."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ddpmkit.cli.options import at_least

if TYPE_CHECKING:
    import numpy as np

    from ddpmkit.config.schema import RunConfig

DESCRIPTION = (
    "Pictures of a run folder, written to <run>/plots: loss.png (the loss of log.csv, overall and "
    "per quarter of the t range), heldout_bpd.png (when train.eval_every was set), "
    "samples_over_training.png (the sample grids written during training), forward_process.png "
    "(held-out data noised by the run's schedule) and, with --trajectory, trajectory.png and "
    "trajectory.gif."
)
POINTS_SHOWN = 2000
"""Held-out 2-D points noised in forward_process.png."""
SAMPLES_PER_COLUMN = 8
"""Images of each step in samples_over_training.png."""

Drawing = Callable[[Path], Path]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "run_dir", metavar="run", type=Path, help="run folder (as ddpmkit train writes it)"
    )
    parser.add_argument(
        "--out", type=Path, help="folder of the pictures (default: <run>/plots); new files only"
    )
    parser.add_argument(
        "--trajectory",
        type=Path,
        help="an .npz written by ddpmkit sample RUN --trajectory: drawn as trajectory.png and "
        "trajectory.gif",
    )
    parser.add_argument(
        "--num_items",
        type=at_least(1),
        default=4,
        help="data items in the forward-process strip, samples in the trajectory strip and GIF",
    )
    parser.add_argument(
        "--num_columns",
        type=at_least(2),
        default=8,
        help="columns of each strip: values of t, trajectory steps, training steps (evenly "
        "spaced, the first and last kept)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seeds the forward process's noise")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from functools import partial

    from ddpmkit import plots
    from ddpmkit.outputs import check_outputs
    from ddpmkit.storage.checkpoints import read_config

    run_dir: Path = args.run_dir
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir}: no such run folder")
    if not (run_dir / "config.json").is_file():
        raise FileNotFoundError(f"{run_dir} is not a ddpmkit run folder: it has no config.json")
    config = read_config(run_dir)
    pictures = log_pictures(run_dir / "log.csv", config.diffusion.num_steps)
    pictures |= samples_pictures(run_dir / "samples", args.num_columns)
    try:
        pictures["forward_process.png"] = forward_process(config, args)
    except (FileNotFoundError, ValueError) as error:
        print(f"ddpmkit: no forward process: the run's data do not load ({error})")
    if args.trajectory is not None:
        trajectory = read_trajectory(args.trajectory)
        pictures["trajectory.png"] = trajectory_strip(trajectory, args)
        pictures["trajectory.gif"] = partial(
            plots.save_animation, trajectory, num_items=args.num_items
        )
    if not pictures:
        raise ValueError(f"{run_dir}: nothing to draw (no log.csv, no samples, no loadable data)")
    out: Path = args.out or run_dir / "plots"
    check_outputs({name: (out / name, Path(name).suffix) for name in pictures})
    for name, draw in pictures.items():
        print(f"ddpmkit: plot {draw(out / name)}")
    return 0


def log_pictures(log: Path, num_steps: int) -> dict[str, Drawing]:
    """loss.png when log.csv has losses, heldout_bpd.png when it has held-out bits/dim."""
    from functools import partial

    from ddpmkit import plots

    table = plots.read_log(log) if log.is_file() else {}
    pictures: dict[str, Drawing] = {}
    if plots.has_values(table, "loss"):
        pictures["loss.png"] = partial(plots.save_loss_plot, table, num_steps=num_steps)
    else:
        print(f"ddpmkit: no loss curve: {log} is missing or has no loss values")
    if plots.has_values(table, "heldout_bpd"):
        pictures["heldout_bpd.png"] = partial(plots.save_heldout_plot, table)
    elif table:
        print("ddpmkit: no held-out bits/dim in log.csv (train.eval_every records them)")
    return pictures


def samples_pictures(folder: Path, most: int) -> dict[str, Drawing]:
    """samples_over_training.png from the .npz files training wrote (``step-NNNNNNN.npz``): at
    most ``most`` of them, evenly spaced; the first few images of each, or all its points."""
    from functools import partial

    from ddpmkit.plots import evenly_spaced, is_points, read_samples, save_strip
    from ddpmkit.storage.checkpoints import step_of

    found = sorted(
        (step, path)
        for path in folder.glob("step-*.npz")
        if (step := step_of(path.stem)) is not None
    )
    if not found:
        print(f"ddpmkit: no samples over training: no {folder}/step-*.npz")
        return {}
    chosen = [found[i] for i in evenly_spaced(len(found), most)]
    columns = []
    for _, path in chosen:
        samples = checked(read_samples(path), 1, f"{path}: samples")
        columns.append(samples if is_points(samples) else samples[:SAMPLES_PER_COLUMN])
    titles = [f"step {step}" for step, _ in chosen]
    draw = partial(save_strip, columns, titles, title="Samples during training")
    return {"samples_over_training.png": draw}


def forward_process(config: RunConfig, args: argparse.Namespace) -> Drawing:
    """forward_process.png: held-out items x_0 and x_t = √ᾱ_t x_0 + √(1-ᾱ_t) ε at evenly spaced
    t (one ε per item), for 2-D data a density of the noised held-out points at each t."""
    from functools import partial

    import torch

    from ddpmkit.config.builders import build_schedule
    from ddpmkit.core.forward import q_sample
    from ddpmkit.data import dataset_size, load_data, stack_items
    from ddpmkit.plots import evenly_spaced, save_strip

    schedule = build_schedule(config.diffusion)
    split = "heldout" if config.data.heldout_fraction > 0 else "train"
    dataset = load_data(config.data, split).dataset
    points = len(config.model.sample_shape or ()) == 1
    count = min(dataset_size(dataset), POINTS_SHOWN if points else args.num_items)
    x0, _ = stack_items(dataset, count)
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(args.seed))
    ts = evenly_spaced(schedule.num_steps, args.num_columns)
    columns = [x0] + [q_sample(schedule, x0, torch.full((count,), t), noise) for t in ts]
    titles = [f"{split} x_0"] + [f"t = {t}" for t in ts]
    title = f"Forward process q(x_t | x_0), T = {schedule.num_steps} ({config.diffusion.schedule})"
    arrays = [column.numpy() for column in columns]
    return partial(save_strip, arrays, titles, title=title, density=points)


def read_trajectory(path: Path) -> np.ndarray:
    """The samples of a ``ddpmkit sample --trajectory`` file: (B, S, C, H, W) or (B, S, 2)."""
    from ddpmkit.plots import read_samples

    if not path.is_file():
        raise FileNotFoundError(f"--trajectory {path}: no such file")
    return checked(read_samples(path), 2, f"--trajectory {path}: samples")


def checked(samples: np.ndarray, leading: int, what: str) -> np.ndarray:
    """``samples`` if they are ``leading`` non-empty axes of images (C, H, W), C in {1, 3, 4}, or
    of 2-D points; else a ValueError naming ``what``."""
    inner = samples.shape[leading:]
    images = len(inner) == 3 and inner[0] in (1, 3, 4)
    if samples.ndim > leading and 0 not in samples.shape[:leading] and (images or inner == (2,)):
        return samples
    axes = "(B, S, …)" if leading == 2 else "(B, …)"
    raise ValueError(
        f"{what} of shape {samples.shape}; expected {axes} of images (C, H, W) or 2-D points (2,)"
    )


def trajectory_strip(trajectory: np.ndarray, args: argparse.Namespace) -> Drawing:
    """trajectory.png: the first samples (all points) at evenly spaced steps from x_T to x_0."""
    from functools import partial

    from ddpmkit.plots import evenly_spaced, is_points, save_strip, trajectory_title

    steps = trajectory.shape[1]
    shown = trajectory if is_points(trajectory) else trajectory[: args.num_items]
    chosen = evenly_spaced(steps, args.num_columns)
    columns = [shown[:, s] for s in chosen]
    titles = [trajectory_title(s, steps) for s in chosen]
    title = f"Reverse process x_T → x_0 ({steps - 1} steps)"
    return partial(save_strip, columns, titles, title=title)
