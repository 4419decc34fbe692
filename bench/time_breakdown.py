"""Where a training step and a sampling step of the sizing ladder's U-Nets spend their time, by
category (issue 28, part 1): convolution, normalisation, elementwise and activations, matmul and
attention, layout copies and allocation, optimizer and EMA, and what no operator accounts for
(Python, dispatch, the autograd engine's bookkeeping).

    python bench/time_breakdown.py                          # 28×28 grey, the recipe's batch 32
    python bench/time_breakdown.py --size 8 --rungs tiny,small --precisions fp32
    python bench/time_breakdown.py --threads 2

Each (rung, precision) runs ``Trainer.train_step`` and one denoiser call of the sampling model
(what every sampler step costs) under torch.profiler; the categories sum the operators' *self*
CPU time; "outside operators" is the wall time minus that sum. The CPU is named in the header.
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile

from ddpmkit.config.parsing import from_dict
from ddpmkit.config.schema import RunConfig
from ddpmkit.core.precision import cpu_flags, fast_bf16
from ddpmkit.training.loop import Trainer
from ddpmkit.training.sizing import unet_ladder

CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    # (category, substrings of aten/mkldnn operator names), first match wins
    ("optimizer + EMA", ("adam", "_foreach", "lerp", "clip_grad", "linalg_vector_norm")),
    ("convolution", ("conv", "mkldnn_convolution")),
    ("normalisation", ("group_norm", "layer_norm", "batch_norm")),
    ("matmul + attention", ("mm", "matmul", "linear", "softmax", "scaled_dot_product", "baddbmm")),
    ("layout copies + allocation", ("copy_", "_to_copy", "aten::to", "contiguous", "clone",
                                    "empty", "to_dense", "to_mkldnn", "reorder", "zeros",
                                    "fill_", "as_strided", "view", "reshape", "permute",
                                    "pixel_shuffle", "pixel_unshuffle", "transpose")),
    ("elementwise + activations", ("silu", "add", "mul", "sub", "div", "neg", "exp", "sqrt",
                                   "pow", "where", "cat", "pad", "upsample", "mean", "sum",
                                   "gelu", "sigmoid", "tanh", "cos", "sin", "rsqrt", "mse",
                                   "cumsum", "index", "gather", "embedding", "randn", "normal",
                                   "rand", "clamp", "abs", "log", "max", "min", "isfinite")),
)  # fmt: skip


OTHERS_SHOWN = "--others" in sys.argv


def category(name: str) -> str:
    """The category of an operator name (``other operators`` when none matches)."""
    lowered = name.lower()
    for label, needles in CATEGORIES:
        if any(needle in lowered for needle in needles):
            return label
    return "other operators"


def breakdown(call: Callable[[], object], repeats: int) -> tuple[float, dict[str, float]]:
    """Seconds per call (wall, without the profiler) and each category's seconds per call (under
    the profiler, whose own cost per operator lands in "outside operators")."""
    call()
    call()
    start = time.perf_counter()
    for _ in range(repeats):
        call()
    unprofiled = (time.perf_counter() - start) / repeats
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        start = time.perf_counter()
        for _ in range(repeats):
            call()
        wall = (time.perf_counter() - start) / repeats
    seconds: dict[str, float] = defaultdict(float)
    for event in profiler.key_averages():
        if event.key.startswith(("aten::", "mkldnn::", "onednn::")):
            seconds[category(event.key)] += event.self_cpu_time_total / 1e6 / repeats
    seconds["outside operators"] = max(wall - sum(seconds.values()), 0.0)
    if OTHERS_SHOWN:
        others = [e for e in profiler.key_averages() if category(e.key) == "other operators"]
        others.sort(key=lambda e: -e.self_cpu_time_total)
        print(
            "  other:",
            ", ".join(f"{e.key} {e.self_cpu_time_total / 1e3:.1f}ms" for e in others[:6]),
        )
    return unprofiled, {key: value * unprofiled / wall for key, value in seconds.items()}


def workloads(
    rung: str, size: int, precision: str, batch: int, folder: Path
) -> dict[str, Callable[[], object]]:
    """The train step and one sampling-model denoiser call of a rung at ``size``×``size``."""
    unet = dict(unet_ladder((1, size, size)))[rung]
    data = folder / f"data-{size}.npz"
    if not data.exists():
        images = np.random.default_rng(0).integers(0, 256, (256, 1, size, size), dtype=np.uint8)
        np.savez(data, images=images)
    config = from_dict(RunConfig, {
        "data": {"source": "array", "path": str(data), "heldout_fraction": 0.0},
        "model": {"unet": dataclasses.asdict(unet)},
        "diffusion": {"parameterization": "v", "schedule": "cosine"},
        "train": {"batch_size": batch, "precision": precision, "lr": 2e-3},
        "sample": {"precision": precision},
    })  # fmt: skip
    trainer = Trainer(config, folder / f"run-{rung}-{precision}-{time.monotonic_ns()}")
    x0 = torch.rand(batch, *trainer.shape) * 2 - 1
    labels = torch.zeros(batch, dtype=torch.long)
    model = trainer.sampling_model
    x = torch.randn(batch, *trainer.shape)
    execution = model.execution

    @torch.no_grad()
    def sample_step() -> object:
        with execution.autocast():
            return model.denoiser(x, 1.0)

    return {"train step": lambda: trainer.train_step(x0, labels), "sampling step": sample_step}


def header(threads: int) -> str:
    name = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                family = next(
                    (x for x in Path("/proc/cpuinfo").read_text().splitlines()
                     if x.startswith("cpu family")), "")  # fmt: skip
                model = next(
                    (x for x in Path("/proc/cpuinfo").read_text().splitlines()
                     if x.startswith("model\t")), "")  # fmt: skip
                name += f" ({family.split(':')[-1].strip()}/{model.split(':')[-1].strip()})"
                break
    except OSError:
        pass
    flags = cpu_flags()
    units = [f for f in ("avx512f", "avx512_bf16", "amx_bf16", "avx2") if f in flags]
    return (f"CPU {name}, {threads} thread(s), {', '.join(units)}; torch {torch.__version__}, "
            f"python {sys.version.split()[0]}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=28, help="image side (grey images)")
    parser.add_argument(
        "--rungs", default="tiny,small,medium", help="ladder rungs, comma-separated"
    )
    parser.add_argument("--batch", type=int, default=32, help="the recipe's batch")
    parser.add_argument("--precisions", default=None, help="default: fp32, and bf16 where fast")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--others", action="store_true", help="name the uncategorised operators")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    fast = fast_bf16(torch.device("cpu")) is not None
    precisions = args.precisions.split(",") if args.precisions else ["fp32"] + (["bf16"] * fast)
    print(header(args.threads))
    labels = [label for label, _ in CATEGORIES] + ["other operators", "outside operators"]
    print(f"| rung ({args.size}×{args.size}, batch {args.batch}) | precision | work | ms | "
          + " | ".join(labels) + " |")  # fmt: skip
    print("|" + " --- |" * (4 + len(labels)))
    with tempfile.TemporaryDirectory() as tmp:
        for rung in args.rungs.split(","):
            for precision in precisions:
                for work, call in workloads(
                    rung, args.size, precision, args.batch, Path(tmp)
                ).items():
                    wall, seconds = breakdown(call, args.repeats)
                    shares = " | ".join(f"{100 * seconds.get(k, 0.0) / wall:.0f}%" for k in labels)
                    print(f"| {rung} | {precision} | {work} | {1000 * wall:.1f} | {shares} |",
                          flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
