"""``ddpmkit eval``: bits/dim of held-out data by the variational bound or the probability-flow ODE."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING

from ddpmkit.cli.options import add_checkpoint, add_device_and_quiet, at_least

if TYPE_CHECKING:
    from torch import Tensor
    from torch.utils.data import Dataset

    from ddpmkit.cli.progress import ProgressBar
    from ddpmkit.config.schema import RunConfig
    from ddpmkit.data import DataConfig
    from ddpmkit.likelihood.report import NLLValues
    from ddpmkit.storage.model import TrainedModel
    from ddpmkit.training.distributed import Processes

DESCRIPTION = (
    "Negative log-likelihood in bits/dim, with a 95% confidence interval over the evaluated "
    "samples, printed and written to a JSON report (and, for vlb, a PNG of L_t); or, with "
    "--metrics, FID / IS / KID / PRDC of generated samples against a reference (torch-fidelity)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ddpmkit.core.schedules import REVERSE_VARIANCES

    add_checkpoint(parser)
    parser.add_argument(
        "--nll", choices=("vlb", "ode"), help="which likelihood (default vlb, unless --metrics)"
    )
    parser.add_argument(
        "--metrics",
        type=metric_list,
        help="comma-separated fid,is,kid,prdc: Inception-v3 metrics of --num_samples generated "
        "samples (or --samples) against --reference",
    )
    parser.add_argument(
        "--reference",
        default="run",
        help="metrics: the run's training data (run), a source name, an image folder, an "
        ".npy/.npz array, or an .npz of precomputed statistics (mu, sigma: FID only)",
    )
    parser.add_argument(
        "--samples", type=Path, help="metrics: images to score (folder or .npz) instead of sampling"
    )
    parser.add_argument(
        "--inception_weights",
        type=Path,
        help="metrics: torch-fidelity's weights-inception-2015-12-05-6726825d.pth, checked "
        "against its published checksum (default: torch-fidelity downloads it)",
    )
    parser.add_argument(
        "--data",
        help="what to evaluate: the run's data (default), a source name such as digits, or an "
        "image folder / .npy / .npz file (all of its items, at the model's size)",
    )
    parser.add_argument(
        "--split", choices=("heldout", "train"), default="heldout", help="split of the run's data"
    )
    parser.add_argument(
        "--num_samples", type=at_least(1), default=100, help="items of the split to use"
    )
    parser.add_argument("--batch_size", type=at_least(1), default=100, help="items per batch")
    parser.add_argument(
        "--num_levels",
        type=at_least(2),
        help="quantization levels (default: the data's; digits 17, else 256)",
    )
    parser.add_argument(
        "--variance",
        choices=REVERSE_VARIANCES,
        default="auto",
        help="σ_t² of the bound: learned Σ_θ if the model has one (auto), β_t, β̃_t, learned",
    )
    parser.add_argument("--seed", type=int, default=0, help="seeds the noise of the bound's terms")
    parser.add_argument(
        "--out", type=Path, help="JSON report (default: <run>/eval/<ckpt>-<nll>.json)"
    )
    add_device_and_quiet(parser)
    parser.set_defaults(run=run)


def metric_list(text: str) -> tuple[str, ...]:
    """argparse type of --metrics: known names, comma-separated."""
    from ddpmkit.evaluation.fidelity import METRICS

    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in METRICS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"{text!r}: choose from {','.join(METRICS)}")
    return names


def run(args: argparse.Namespace) -> int:
    import time

    if args.metrics:
        from ddpmkit.cli.quality import run_metrics

        if args.nll is not None:
            raise ValueError("--metrics and --nll are separate evaluations; run them one by one")
        return run_metrics(args)
    args.nll = args.nll or "vlb"

    from torch.utils.data import Subset

    from ddpmkit.cli.progress import ProgressBar, reporter
    from ddpmkit.data import dataset_size, load_data
    from ddpmkit.likelihood.report import nll_report
    from ddpmkit.outputs import check_outputs, save_terms_plot
    from ddpmkit.storage.model import load_model
    from ddpmkit.training.distributed import Processes
    from ddpmkit.training.latents import encode_dataset

    processes = Processes.from_environment()
    model = load_model(args.checkpoint, processes.device_name(args.device))
    assert model.checkpoint is not None
    default_out = model.outputs_folder / "eval" / f"{model.checkpoint.name}-{args.nll}.json"
    out = args.out or default_out
    plot = out.with_suffix(".png")
    check_outputs({"--out": (out, ".json"), "the plot beside it": (plot, ".png")})
    data_config, split = eval_data(model.config, args.data, args.split, model.shape)
    dataset = load_data(data_config, split).dataset
    say = reporter(processes.main)
    if model.autoencoder is not None:  # the density of the latents, which the model learned
        say("ddpmkit: a latent model: bits per latent dimension of the encoded images (a "
            "continuous density, not bits/dim of pixels)")  # fmt: skip
        count = min(args.num_samples, dataset_size(dataset))
        dataset = encode_dataset(model.autoencoder, Subset(dataset, range(count)))
    if dataset[0][0].shape != model.shape:
        raise ValueError(
            f"--data {args.data}: items have shape {tuple(dataset[0][0].shape)} but the model "
            f"was trained on {model.shape}"
        )
    num_samples = min(args.num_samples, dataset_size(dataset))
    if num_samples < args.num_samples:
        say(f"ddpmkit: the data hold {num_samples} items; evaluating all of them")
    batches = -(-num_samples // args.batch_size)
    if batches < processes.world:
        raise ValueError(
            f"--num_samples {num_samples} in batches of --batch_size {args.batch_size} make "
            f"{batches} batch(es), fewer than the {processes.world} processes"
        )
    processes.start(model.device)
    start = time.perf_counter()
    with ProgressBar("eval", "item", disable=args.quiet or not processes.main) as progress:
        values = sharded_nll(model, dataset, args, num_samples, data_config, processes, progress)
    report = nll_report(args.nll, values, time.perf_counter() - start)
    if not processes.main:
        return 0
    where = f", {processes.world} processes" if processes.distributed else ""
    print(f"ddpmkit: {args.nll} {report.bits_per_dim:.4f} ± {report.ci95:.4f} bits/dim (95% CI, "
          f"{report.num_samples} samples, {report.nfe} network evaluations, "
          f"{report.seconds:.1f} s{where})")  # fmt: skip
    for row in report.rate_distortion_table():
        print(f"ddpmkit:   {row}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    print(f"ddpmkit: report {out}")
    if report.terms_bpd is not None:
        print(f"ddpmkit: L_t plot {save_terms_plot(report.terms_bpd, plot)}")
    return 0


def sharded_nll(
    model: TrainedModel,
    dataset: Dataset[tuple[Tensor, Tensor]],
    args: argparse.Namespace,
    num_samples: int,
    data_config: DataConfig,
    processes: Processes,
    progress: ProgressBar,
) -> NLLValues:
    """Each process evaluates its block of batches (each batch's noise seeded by its index), and
    all join the per-item values: what one process computes, bit for bit."""
    from ddpmkit.likelihood.report import NLLValues, nll_values

    batches = processes.block(-(-num_samples // args.batch_size))
    mine = nll_values(
        model.denoiser, model.schedule, dataset, args.nll, batch_size=args.batch_size,
        batches=batches, num_items=num_samples, num_levels=args.num_levels or data_config.levels,
        variance=args.variance, seed=args.seed, progress=progress,
        continuous=model.autoencoder is not None,
    )  # fmt: skip
    if not processes.distributed:
        return mine
    rows = range(batches.start * args.batch_size, min(batches.stop * args.batch_size, num_samples))

    def join(part: Tensor | None) -> Tensor | None:
        return None if part is None else processes.join(part, rows, num_samples, model.device)

    nfe = processes.total(mine.nfe, model.device)
    bits = processes.join(mine.bits, rows, num_samples, model.device)
    return NLLValues(bits, join(mine.terms), join(mine.prior), nfe)


def eval_data(
    config: RunConfig, data: str | None, split: str, shape: tuple[int, ...]
) -> tuple[DataConfig, str]:
    """The data to evaluate and its split: the run's own, a named source, or a file or folder."""
    from ddpmkit.data import DataConfig
    from ddpmkit.data.config import SOURCES

    if data is None:
        return config.data, split
    if data in SOURCES:
        return dataclasses.replace(config.data, source=data, path=None, num_levels=None), split
    path = Path(data)
    if not path.exists():
        raise FileNotFoundError(f"--data {data}: no such file or folder (nor a source {SOURCES})")
    if path.is_dir():
        return DataConfig(
            source="folder", path=data, image_size=(shape[1], shape[2]), channels=shape[0],
            heldout_fraction=0.0,
        ), "train"  # fmt: skip
    return DataConfig(source="array", path=data, heldout_fraction=0.0), "train"
