"""``ddpmkit eval``: bits/dim of held-out data by the variational bound or the probability-flow ODE."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from ddpmkit.cli.options import add_checkpoint, add_device_and_quiet, at_least

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
    if args.metrics:
        from ddpmkit.cli.quality import run_metrics

        if args.nll is not None:
            raise ValueError("--metrics and --nll are separate evaluations; run them one by one")
        return run_metrics(args)
    args.nll = args.nll or "vlb"

    from ddpmkit.api.model import load
    from ddpmkit.files import write_text_atomically
    from ddpmkit.outputs import check_outputs
    from ddpmkit.plots import save_terms_plot
    from ddpmkit.progress import reporter
    from ddpmkit.training.distributed import Processes

    processes = Processes.from_environment()
    model = load(args.checkpoint, processes.device_name(args.device))
    assert model.checkpoint is not None
    default_out = model.outputs_folder / "eval" / f"{model.checkpoint.name}-{args.nll}.json"
    out = args.out or default_out
    plot = out.with_suffix(".png")
    check_outputs({"--out": (out, ".json"), "the plot beside it": (plot, ".png")})
    say = reporter(processes.main)
    if model.autoencoder is not None:  # the density of the latents, which the model learned
        say("ddpmkit: a latent model: bits per latent dimension of the encoded images (a "
            "continuous density, not bits/dim of pixels)")  # fmt: skip
    report = model.likelihood(
        args.data, method=args.nll, num_samples=args.num_samples, batch_size=args.batch_size,
        split=args.split, num_levels=args.num_levels, variance=args.variance, seed=args.seed,
        progress=not (args.quiet or not processes.main), processes=processes,
    )  # fmt: skip
    if not processes.main:
        return 0
    if not math.isfinite(report.bits_per_dim):
        raise FloatingPointError(
            f"the bound is {report.bits_per_dim} bits/dim, so no report was written: the model's "
            "outputs overflowed on these data (check the weights, or try --num_levels/--variance)"
        )
    if report.num_samples < args.num_samples:
        say(f"ddpmkit: the data hold {report.num_samples} items; evaluated all of them")
    where = f", {processes.world} processes" if processes.distributed else ""
    print(f"ddpmkit: {args.nll} {report.bits_per_dim:.4f} ± {report.ci95:.4f} bits/dim (95% CI, "
          f"{report.num_samples} samples, {report.nfe} network evaluations, "
          f"{report.seconds:.1f} s{where})")  # fmt: skip
    for row in report.rate_distortion_table():
        print(f"ddpmkit:   {row}")
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomically(out, json.dumps(report.to_dict(), indent=2) + "\n", overwrite=True)
    print(f"ddpmkit: report {out}")
    if report.terms_bpd is not None:
        print(f"ddpmkit: L_t plot {save_terms_plot(report.terms_bpd, plot)}")
    return 0
