"""The automatic-sizing ladder measured: each rung's parameters and training-step time per image
size (U-Nets; and MLPs for images of at most 64 values), and the rung a budget would choose.

    python bench/sizing_ladder.py [--sizes 8,28,32,64] [--batch 128] [--budgets 1,4,15,60]

Times are one AdamW step at the batch size (the mean of two after one untimed), as the trainer's
``model.auto_size`` times them on the run's device; a rung slower than ``--max_seconds`` per step
is not timed (and nothing above it).
"""

from __future__ import annotations

import argparse
import math

import torch

from ddpmkit.core.precision import resolve_precision
from ddpmkit.training.sizing import (
    MIN_STEPS,
    MLP_MAX_VALUES,
    mlp_ladder,
    network_of,
    seconds_per_step,
    unet_ladder,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="8,28,32,64")
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--budgets", default="1,4,15,60", help="minutes")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--max_seconds", type=float, default=8.0)
    args = parser.parse_args()
    device = torch.device("cpu")
    precision = resolve_precision(args.precision, device)
    budgets = [float(b) for b in args.budgets.split(",")]
    print(
        f"batch {args.batch}, {precision}; a rung is chosen with ≥ {MIN_STEPS} steps in the budget"
    )
    print(
        "| size | rung | parameters | s/step | "
        + " | ".join(f"steps in {b:g} min" for b in budgets)
        + " |"
    )
    print("|---|---|---|---|" + "---|" * len(budgets))
    for size in (int(s) for s in args.sizes.split(",")):
        shape = (args.channels, size, size)
        mlps = mlp_ladder(shape) if math.prod(shape) <= MLP_MAX_VALUES else []
        for rungs in (unet_ladder(shape), mlps):
            for name, config in rungs:
                parameters = sum(p.numel() for p in network_of(config).parameters())
                per_step = seconds_per_step(config, args.batch, device, precision)
                steps = " | ".join(f"{int(60 * b / per_step):,}" for b in budgets)
                print(
                    f"| {size} | {name} | {parameters:,} | {per_step:.3f} | {steps} |", flush=True
                )
                if per_step > args.max_seconds:
                    break


if __name__ == "__main__":
    main()
