"""Exactness testbed: every sampler on data whose optimal denoiser is exact, error against NFE.

    python bench/sampler_testbed.py [--quick] [--out docs/benchmarks-samplers.md]
                                    [--plot docs/sampler_testbed.png] [--testbeds sharp-2d ...]

Each sampler of ``ddpmkit.samplers.SAMPLERS`` (and, when diffusers is importable, six diffusers
schedulers on the same ε-model) draws N samples from the same x_T draws with the exact denoiser of
a ``ddpmkit.evaluation.testbed`` distribution, so every error is the sampler's own. The error is the sliced
Wasserstein distance SW₂ to N exact samples, averaged over exact reference sets and x_T draws; the
Monte-Carlo floor is the same score for fresh exact samples (what a perfect sampler scores), with
its spread. Samplers above ``--threshold`` × floor at the largest NFE also run at ``--extra-nfe``.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import os
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ddpmkit.core.denoisers import Denoiser
from ddpmkit.core.schedules import NoiseSchedule
from ddpmkit.evaluation.metrics import sliced_wasserstein
from ddpmkit.evaluation.testbed import TESTBEDS, ExactDistribution, TimestepEpsModel
from ddpmkit.samplers import SAMPLERS, Sampler, sample

TOLERANCES = (1e-2, 1e-3, 1e-4, 1e-5)  # rtol = atol sweep for adaptive solvers
DIFFUSERS_SCHEDULERS: dict[str, tuple[str, dict[str, Any], int]] = {
    # label: (class name, extra config, denoiser calls per step beyond the last)
    "DDIM": ("DDIMScheduler", {"clip_sample": False}, 1),  # its default clips x̂_0 to [-1, 1]
    "DPM++2M": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++"}, 1),
    "UniPC": ("UniPCMultistepScheduler", {}, 1),
    "DEIS": ("DEISMultistepScheduler", {}, 1),
    "Euler": ("EulerDiscreteScheduler", {}, 1),
    "Heun": ("HeunDiscreteScheduler", {}, 2),
}

DIFFUSERS_CONFIG: dict[str, Any] = {
    "num_train_timesteps": 1000, "beta_start": 1e-4, "beta_end": 0.02,
    "beta_schedule": "linear", "prediction_type": "epsilon",
}  # fmt: skip


@dataclass
class Cell:
    error: float
    nfe: int  # the evaluations actually spent
    tolerance: float | None = None  # adaptive solvers: the rtol = atol that cost ``nfe``


@dataclass
class Row:
    label: str
    cells: dict[int, Cell] = field(default_factory=dict)  # target NFE (adaptive: spent) -> result
    adaptive: bool = False


Runner = Callable[[Tensor, torch.Generator], tuple[Tensor, int]]
"""(x_T, generator) -> (samples, evaluations spent)."""


@dataclass
class Setup:
    """What every run of one testbed shares: data, schedule, x_T and the exact references."""

    dist: ExactDistribution
    denoiser: Denoiser
    schedule: NoiseSchedule
    noises: list[Tensor]  # the x_T draws, each (N, D)
    references: list[Tensor]
    projections: int
    seed: int

    def error(self, samples: Tensor) -> float:
        """Mean SW₂ to the reference sets, the same projection directions for every call."""
        directions = self.seed + 1
        errors = [
            sliced_wasserstein(samples, ref, self.projections, seeded(directions))
            for ref in self.references
        ]
        return float(np.mean(errors))

    def score(self, label: str, runner: Runner, tolerance: float | None = None) -> Cell:
        """The error averaged over the x_T draws, each run with its own seeded generator."""
        runs = [runner(x_T, seeded(self.seed + 7 + d)) for d, x_T in enumerate(self.noises)]
        cell = Cell(float(np.mean([self.error(x) for x, _ in runs])), runs[0][1], tolerance)
        progress(f"  {label:>17} NFE {cell.nfe:5d}: SW {cell.error:.4f}")
        return cell


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@dataclass
class Floor:
    """The errors of fresh exact sample sets: what a perfect sampler scores, and its spread."""

    values: list[float]

    @property
    def mean(self) -> float:
        return float(np.mean(self.values))

    def describe(self) -> str:
        low, high = min(self.values), max(self.values)
        return (
            f"Monte-Carlo floor SW₂ = {self.mean:.4f} ({len(self.values)} fresh exact stand-ins scored "
            f"{low:.4f}–{high:.4f}, {low / self.mean:.2f}–{high / self.mean:.2f}× the floor: "
            "a ratio in that band is sampling noise)"
        )


def build_setup(name: str, args: argparse.Namespace) -> tuple[Setup, Floor]:
    """The shared setup for testbed ``name`` and its Monte-Carlo floor."""
    dist = TESTBEDS[name]()
    n, seed = args.samples, args.seed
    references = [dist.sample(n, seeded(seed + 100 + r)) for r in range(args.repeats)]
    draw = partial(torch.randn, n, dist.dim, dtype=torch.float64)
    noises = [draw(generator=seeded(seed + 10 * d)) for d in range(args.draws)]
    schedule = NoiseSchedule.linear(1000)
    setup = Setup(dist, dist.denoiser(), schedule, noises, references, args.projections, seed)
    floor = Floor([])
    for k in range(args.floor_sets):  # exact sets standing in for the sampler's draws
        fresh = [dist.sample(n, seeded(seed + 1000 + 10 * k + d)) for d in range(args.draws)]
        floor.values.append(float(np.mean([setup.error(exact) for exact in fresh])))
    return setup, floor


def runner(setup: Setup, name: str, steps: int, **options: Any) -> Runner:
    """Sampler ``name`` over ``steps`` levels of its default grid, as a ``Runner``."""

    def run(x_T: Tensor, generator: torch.Generator) -> tuple[Tensor, int]:
        result = sample(
            name, setup.denoiser, setup.schedule, x_T, steps, generator=generator, **options
        )
        return result.samples, result.nfe

    return run


def steps_within(setup: Setup, name: str, spec: Sampler, nfe: int) -> int:
    """``spec.steps_for_nfe(nfe)``, checked on a two-sample probe and lowered if it overspends."""
    x_T, generator = setup.noises[0][:2], seeded(0)
    steps = spec.steps_for_nfe(nfe)
    spent = runner(setup, name, steps)(x_T, generator)[1]
    if spent > nfe:
        steps = max(1, steps * nfe // spent)
        while steps > 1 and runner(setup, name, steps)(x_T, generator)[1] > nfe:
            steps -= 1
    return steps


def fixed_step_row(
    setup: Setup, name: str, spec: Sampler, nfes: list[int], extra: list[int], limit: float
) -> Row:
    """One row: the sampler at each target NFE, then at ``extra`` if still above ``limit``."""
    row = Row(name)
    by_steps: dict[int, Cell] = {}  # a sampler whose steps collapse runs once
    for targets in (nfes, extra):
        if targets is extra and row.cells and row.cells[max(row.cells)].error <= limit:
            break
        for nfe in targets:
            steps = steps_within(setup, name, spec, nfe)
            if steps not in by_steps:
                by_steps[steps] = setup.score(name, runner(setup, name, steps))
            row.cells[nfe] = by_steps[steps]
    return row


def adaptive_row(setup: Setup, name: str, spec: Sampler) -> Row:
    """An adaptive solver at a sweep of tolerances (its default alone if it takes none)."""
    row = Row(name, adaptive=True)
    sweep = TOLERANCES if {"rtol", "atol"} <= set(spec.options()) else (None,)
    for tol in sweep:
        options = {} if tol is None else {"rtol": tol, "atol": tol}
        # the grid's ends are all it uses; 2 levels (plus σ = 0) give σ_max and σ_min
        cell = setup.score(f"{name} tol {tol}", runner(setup, name, 2, **options), tol)
        row.cells[cell.nfe] = cell
    return row


def ddpmkit_rows(
    setup: Setup, names: list[str], nfes: list[int], extra: list[int], limit: float
) -> list[Row]:
    specs = {name: SAMPLERS[name] for name in names}
    return [
        adaptive_row(setup, name, spec)
        if spec.adaptive
        else fixed_step_row(setup, name, spec, nfes, extra, limit)
        for name, spec in specs.items()
    ]


def run_diffusers(scheduler: Any, steps: int, model: TimestepEpsModel, noise: Tensor) -> Tensor:
    """The standard diffusers loop: scale_model_input, ε-model, step."""
    scheduler.set_timesteps(steps)
    x = noise * scheduler.init_noise_sigma
    for t in scheduler.timesteps:
        eps = model(scheduler.scale_model_input(x, t), t)
        x = scheduler.step(eps, t, x).prev_sample
    return x


def diffusers_rows(setup: Setup, nfes: list[int], spacing: str) -> list[Row]:
    """DDIM, DPM-Solver++(2M), UniPC, DEIS, Euler and Heun with DDPM's linear β, ε-prediction."""
    import diffusers

    config = {**DIFFUSERS_CONFIG, "timestep_spacing": spacing}
    rows = []
    for label, (class_name, extra, calls) in DIFFUSERS_SCHEDULERS.items():
        row = Row(f"diffusers {label}")
        for nfe in nfes:
            steps = (nfe + calls - 1) // calls  # Heun: 2·steps - 1 calls
            scheduler = partial(getattr(diffusers, class_name), **config, **extra)
            row.cells[nfe] = setup.score(row.label, diffusers_runner(setup, scheduler, steps))
        rows.append(row)
    return rows


def diffusers_runner(setup: Setup, make_scheduler: Callable[[], Any], steps: int) -> Runner:
    """A fresh scheduler and ε-model per run (multistep schedulers keep state)."""

    def run(x_T: Tensor, _: torch.Generator) -> tuple[Tensor, int]:
        model = TimestepEpsModel(setup.denoiser, setup.schedule)
        return run_diffusers(make_scheduler(), steps, model, x_T), model.calls

    return run


def diffusers_version() -> str | None:
    spec = importlib.util.find_spec("diffusers")
    return None if spec is None else importlib.metadata.version("diffusers")


def markdown_table(rows: list[Row], floor: float) -> str:
    """Sampler × NFE: SW₂ (error/floor), with the evaluations spent when they differ."""
    columns = sorted({nfe for row in rows if not row.adaptive for nfe in row.cells})
    lines = [
        "| sampler | " + " | ".join(f"NFE {c}" for c in columns) + " |",
        "| --- |" + " --- |" * len(columns),
    ]
    for row in (r for r in rows if not r.adaptive):
        cells = [row.cells.get(c) for c in columns]
        text = [
            "" if cell is None else format_cell(cell, floor, "" if cell.nfe == c else cell.nfe)
            for c, cell in zip(columns, cells, strict=True)
        ]
        lines.append(f"| {row.label} | " + " | ".join(text) + " |")
    return "\n".join(lines)


def adaptive_table(rows: list[Row], floor: float) -> str:
    """Adaptive solvers: one line per tolerance, with the evaluations it cost."""
    lines = ["| adaptive solver | rtol = atol | NFE | SW₂ (×floor) |", "| --- | --- | --- | --- |"]
    for row in (r for r in rows if r.adaptive):
        for cell in row.cells.values():
            tol = "default" if cell.tolerance is None else f"{cell.tolerance:g}"
            lines.append(f"| {row.label} | {tol} | {cell.nfe} | {format_cell(cell, floor, '')} |")
    return "\n".join(lines) if len(lines) > 2 else ""


def format_cell(cell: Cell, floor: float, spent: int | str) -> str:
    return f"{cell.error:.4f} ({cell.error / floor:.1f}×)" + (f" [{spent}]" if spent else "")


def section(name: str, setup: Setup, floor: Floor, rows: list[Row], seconds: float) -> str:
    return (
        f"## {name} (D = {setup.dist.dim})\n\n"
        f"N = {len(setup.noises[0])} samples × {len(setup.noises)} x_T draws, "
        f"{len(setup.references)} reference sets, "
        f"{setup.projections} projections, {seconds:.0f} s. {floor.describe()}.\n\n"
        f"{markdown_table(rows, floor.mean)}\n\n{adaptive_table(rows, floor.mean)}\n"
    )


def header(argv: list[str], spacing: str) -> str:
    command = "python bench/sampler_testbed.py " + " ".join(shlex.quote(a) for a in argv)
    return (
        "# Sampler exactness testbed\n\n"
        f"Command: `{command.strip()}` ({time.strftime('%Y-%m-%d')}; torch {torch.__version__}, "
        f"diffusers {diffusers_version() or 'absent'}).\n\n"
        "Every sampler runs with the exact denoiser of the testbed distribution "
        "(`ddpmkit.evaluation.testbed`), the linear β schedule (10⁻⁴…0.02, T = 1000) and the same "
        "x_T draws, so "
        "every error is the sampler's own. A cell is the sliced Wasserstein distance SW₂ to exact "
        "samples and, in brackets, its ratio to the Monte-Carlo floor (what exact samples score: "
        "about 1× is as good as exact; each section gives the band that exact sets score); "
        "[n] is the number of evaluations spent when it differs from the column's. "
        "Adaptive solvers have their own table, one line per tolerance. "
        f"diffusers' schedulers use `timestep_spacing={spacing!r}` and the same β; note that "
        "`DDIMScheduler` steps from t to t - T//n, which is its next listed timestep only for "
        "`'leading'`/`'trailing'` with n dividing T (as every NFE here does)."
        "\n\n"
    )


def plot(results: list[tuple[str, float, list[Row]]], path: Path) -> bool:
    """Error against NFE, log-log, one panel per testbed; False when matplotlib is absent."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, axes = plt.subplots(1, len(results), figsize=(7 * len(results), 5.5), squeeze=False)
    for ax, (name, floor, rows) in zip(axes[0], results, strict=True):
        ax.set_prop_cycle(color=[plt.get_cmap("tab20")(i) for i in range(20)])
        for row in rows:
            points = sorted((cell.nfe, cell.error) for cell in row.cells.values())
            style = "--" if row.label.startswith("diffusers") else "-"
            ax.plot(*zip(*points, strict=True), style, marker="o", ms=3, label=row.label)
        ax.axhline(floor, color="k", lw=1, ls=":", label="Monte-Carlo floor")
        ax.set(xscale="log", yscale="log", xlabel="NFE", ylabel="sliced W₂ to exact", title=name)
        ax.set_ylim(0.5 * floor, 50 * floor)  # divergent runs leave the plot at the top
        ax.legend(fontsize=7, ncol=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return True


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="5,000 samples, sharp-2d only")
    p.add_argument("--testbeds", nargs="+", choices=sorted(TESTBEDS), help="default: see --quick")
    p.add_argument("--samplers", nargs="+", choices=list(SAMPLERS), default=list(SAMPLERS))
    p.add_argument("--samples", type=int, help="samples per set (default 20,000; quick 5,000)")
    p.add_argument("--nfe", type=int, nargs="+", default=[5, 10, 20, 50, 100])
    p.add_argument("--extra-nfe", type=int, nargs="+", default=[200, 500, 1000])
    p.add_argument("--threshold", type=float, default=1.5, help="error/floor needing --extra-nfe")
    p.add_argument("--repeats", type=int, default=3, help="exact reference sets")
    p.add_argument("--draws", type=int, default=2, help="x_T draws each error is averaged over")
    p.add_argument("--floor-sets", type=int, default=10, help="fresh exact sets for the floor")
    p.add_argument("--projections", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-diffusers", action="store_true", help="skip diffusers' schedulers")
    p.add_argument(
        "--diffusers-spacing", default="trailing", choices=["linspace", "leading", "trailing"]
    )
    p.add_argument("--out", type=Path, default=Path("docs/benchmarks-samplers.md"))
    p.add_argument("--plot", type=Path, default=Path("docs/sampler_testbed.png"))
    args = p.parse_args(argv)
    args.samples = args.samples or (5000 if args.quick else 20000)
    args.testbeds = args.testbeds or (
        ["sharp-2d"] if args.quick else ["sharp-2d", "gaussian-8", "mixture-32"]
    )
    return args


def run_testbed(name: str, args: argparse.Namespace) -> tuple[str, float, list[Row], str]:
    start = time.perf_counter()
    setup, floor = build_setup(name, args)
    progress(f"{name}: {floor.describe()}")
    limit = args.threshold * floor.mean
    rows = ddpmkit_rows(setup, args.samplers, args.nfe, args.extra_nfe, limit)
    if not args.no_diffusers and diffusers_version() is not None:
        rows += diffusers_rows(setup, args.nfe, args.diffusers_spacing)
    report = section(name, setup, floor, rows, time.perf_counter() - start)
    return name, floor.mean, rows, report


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    results = [run_testbed(name, args) for name in args.testbeds]
    report = header(argv, args.diffusers_spacing) + "\n".join(section for *_, section in results)
    if plot([(name, floor, rows) for name, floor, rows, _ in results], args.plot):
        report += f"\n![error against NFE]({os.path.relpath(args.plot, args.out.parent)})\n"
    print(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)


if __name__ == "__main__":
    main()
