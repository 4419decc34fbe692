"""Held-out bits/dim of trained runs, side by side: the bound (fixed or learned Σ) and the PF-ODE.

    python bench/likelihood.py RUN [RUN …] [--ode_samples N] [--timing_samples 1000] [--out F.md]

For each run (its latest checkpoint, EMA weights): the variational bound over all T terms on the
whole held-out split with the model's own variance (learned Σ_θ where it has one) and, for
fixed-variance models, with both β̃_t and β_t; and the probability-flow ODE likelihood on the
first ``--ode_samples`` held-out items. ``--timing_samples`` times the full bound on that many
training digits with the first run (the digits' held-out split has only 297 images). Writes a
Markdown table to ``--out`` and prints it.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from ddpmkit.data import load_data
from ddpmkit.likelihood.report import NLLReport, evaluate_nll
from ddpmkit.storage.checkpoints import read_config, resolve_checkpoint
from ddpmkit.storage.model import load_model


def evaluate(run: Path, method: str, variance: str, split: str, count: int | None) -> NLLReport:
    """bits/dim of the first ``count`` items of ``split`` (all when None) under the run's model."""
    model = load_model(run)
    dataset = load_data(model.config.data, split).dataset
    num_samples = len(dataset) if count is None else min(count, len(dataset))
    return evaluate_nll(
        model.denoiser, model.schedule, dataset, method,  # type: ignore[arg-type]
        num_samples=num_samples, batch_size=100,
        num_levels=model.config.data.levels,
        variance=variance,  # type: ignore[arg-type]
    )  # fmt: skip


def describe(run: Path) -> str:
    """The run's objective as a short label, e.g. ``L_hybrid (learned Σ)``."""
    diffusion = read_config(resolve_checkpoint(run)).diffusion
    label = {"simple": "L_simple", "hybrid": "L_hybrid", "vlb": "L_vlb"}[diffusion.loss]
    if diffusion.timestep_sampling == "importance":
        label += ", importance-sampled t"
    return label + (" (learned Σ)" if diffusion.learned_variance else " (fixed Σ)")


def cell(report: NLLReport) -> str:
    return f"{report.bits_per_dim:.3f} ± {report.ci95:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--ode_samples", type=int, default=100)
    parser.add_argument("--timing_samples", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks-likelihood.md"))
    args = parser.parse_args()
    torch.manual_seed(0)
    rows = []
    for run in args.runs:
        learned = read_config(resolve_checkpoint(run)).diffusion.learned_variance
        bounds = {"auto": evaluate(run, "vlb", "auto", "heldout", None)}
        if not learned:
            bounds["beta"] = evaluate(run, "vlb", "beta", "heldout", None)
        ode = evaluate(run, "ode", "auto", "heldout", args.ode_samples)
        fixed_beta = cell(bounds["beta"]) if "beta" in bounds else "–"
        batches = -(-ode.num_samples // 100)
        rows.append(
            f"| {run.name} | {describe(run)} | {cell(bounds['auto'])} | {fixed_beta} | "
            f"{cell(ode)} ({ode.num_samples}, {ode.nfe // batches} NFE per batch, "
            f"{ode.seconds:.0f} s) |"
        )
        print(rows[-1], flush=True)
    start = time.perf_counter()
    timing = evaluate(args.runs[0], "vlb", "auto", "train", args.timing_samples)
    seconds = time.perf_counter() - start
    lines = [
        "| run | objective | bound, own Σ (β̃ if fixed) | bound, σ² = β | PF-ODE (items, NFE, time) |",
        "|---|---|---|---|---|",
        *rows,
        "",
        f"Full bound (all T = {len(timing.terms_bpd or [])} terms) on {timing.num_samples} "
        f"training digits with {args.runs[0].name}: {timing.bits_per_dim:.3f} ± "
        f"{timing.ci95:.3f} bits/dim in {seconds:.0f} s ({timing.nfe} network evaluations of "
        "batches of 100).",
    ]
    text = "\n".join(lines) + "\n"
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
