"""DDPM's Table 2 at small scale: what the network predicts and which loss trains it.

    python bench/parameterization_ablation.py [--steps 1500] [--data digits|toy2d] [--out F.md]

Each row trains the ``digits`` preset (or ``toy2d``) for the same number of steps and seed, then
reports the held-out variational bound (all T terms, bits/dim, with the model's own Σ; digits
only, since its decoder is for discrete pixels) and sample
quality: for digits the digits-classifier feature FID of 500 samples (DPM-Solver++ 50 steps) and
the confident share; for toy2d the energy distance of 2,000 samples to held-out points. Rows
(Ho et al. 2020, Table 2; Luo 2022): μ̃ with the true bound and fixed isotropic Σ, μ̃ with
learned diagonal Σ, ε with the true bound, ε with L_simple, ε with learned Σ by L_hybrid
(Improved DDPM's fix), and x_0, v and the score with their unweighted losses.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import torch

from ddpmkit.config.parsing import from_dict, merge
from ddpmkit.config.presets import PRESETS
from ddpmkit.config.schema import RunConfig
from ddpmkit.data import load_data
from ddpmkit.generation.sampling import generate
from ddpmkit.likelihood.report import evaluate_nll
from ddpmkit.storage.model import load_model
from ddpmkit.training.loop import Trainer

ROWS = [  # (row, parameterization, loss, learned Σ)
    ("μ̃, true bound, fixed isotropic Σ", "mean", "vlb", False),
    ("μ̃, true bound, learned diagonal Σ", "mean", "vlb", True),
    ("ε, true bound, fixed Σ", "eps", "vlb", False),
    ("ε, L_simple, fixed Σ", "eps", "simple", False),
    ("ε, L_hybrid, learned Σ", "eps", "hybrid", True),
    ("x_0, unweighted MSE, fixed Σ", "x0", "simple", False),
    ("v, unweighted MSE, fixed Σ", "v", "simple", False),
    ("score, unweighted MSE, fixed Σ", "score", "simple", False),
]


def config_for(data: str, steps: int, parameterization: str, loss: str, learned: bool) -> RunConfig:
    diffusion = {"parameterization": parameterization, "loss": loss, "learned_variance": learned}
    # the end-of-training grid is a small one: the quality figures sample on their own
    train = {"steps": steps, "checkpoint_every": steps, "sample_every": 0}
    sample = {"num_samples": 16, "batch_size": 16, "sampler": "dpm++2m", "steps": 20}
    values = merge(PRESETS[data], {"diffusion": diffusion, "train": train, "sample": sample})
    return from_dict(RunConfig, values, "ablation")


def energy_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """2E‖a − b‖ − E‖a − a'‖ − E‖b − b'‖ between two point sets (Székely & Rizzo)."""
    return float(2 * torch.cdist(a, b).mean() - torch.cdist(a, a).mean() - torch.cdist(b, b).mean())


def quality(run: Path, data: str) -> dict[str, float]:
    model = load_model(run)
    if data == "digits":
        from ddpmkit.evaluation import assess_digits

        sample = dataclasses.replace(
            model.config.sample, sampler="dpm++2m", steps=50, num_samples=500
        )
        report = assess_digits(generate(model, sample).samples)
        return {"feature FID": report.fid, "confident": report.confident_share}
    sample = dataclasses.replace(model.config.sample, sampler="dpm++2m", steps=50, num_samples=2000)
    points = generate(model, sample).samples.float()
    heldout = torch.stack(
        [load_data(model.config.data, "heldout").dataset[i][0] for i in range(2000)]
    )
    return {"energy distance": energy_distance(points, heldout)}


def bound(run: Path, count: int) -> float:
    model = load_model(run)
    dataset = load_data(model.config.data, "heldout").dataset
    report = evaluate_nll(
        model.denoiser, model.schedule, dataset, "vlb", num_samples=min(count, len(dataset)),
        batch_size=100, num_levels=model.config.data.levels,
    )  # fmt: skip
    return report.bits_per_dim


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=("digits", "toy2d"), default="digits")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--bound_items", type=int, default=100, help="held-out items in the bound")
    parser.add_argument("--runs", type=Path, default=Path("runs/ablation"))
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    lines = [f"| row ({args.data}, {args.steps} steps) | bound bits/dim | quality | train s |",
             "| --- | --- | --- | --- |"]  # fmt: skip
    for name, parameterization, loss, learned in ROWS:
        run = (
            args.runs / f"{args.data}-{parameterization}-{loss}-{'learned' if learned else 'fixed'}"
        )
        start = time.perf_counter()
        try:
            if not (run / "checkpoints").is_dir():
                config = config_for(args.data, args.steps, parameterization, loss, learned)
                Trainer(config, run).fit()
            seconds = time.perf_counter() - start
            # the discretized decoder's bound is for 8-bit-like images, not 2-D points
            bpd = f"{bound(run, args.bound_items):.3f}" if args.data == "digits" else "—"
            scores = ", ".join(f"{k} {v:.3f}" for k, v in quality(run, args.data).items())
        except (ValueError, FloatingPointError) as error:  # a diverged row is a finding
            seconds = time.perf_counter() - start
            bpd, scores = "diverged", str(error).splitlines()[0][:80]
        lines.append(f"| {name} | {bpd} | {scores} | {seconds:.0f} |")
        print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out is not None:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
