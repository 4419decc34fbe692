"""torch.compile's modes on the sizing ladder's small U-Nets, for sampling (issue 28, part 2): one
denoiser call at the recipe's batch, eager against compiled variants, interleaved in one process.

    python bench/compile_modes.py                            # 28×28 tiny and small rungs, bf16/fp32
    python bench/compile_modes.py --size 8 --rungs tiny,small --precisions fp32

Variants: ``eager`` (no_grad), ``inference_mode`` (eager under torch.inference_mode), ``default``
(``torch.compile(dynamic=False)``, what ``sample.compile`` does), ``max-autotune``
(mode ``max-autotune-no-cudagraphs``) and ``freezing`` (the default mode with inductor's
``freezing``: weights folded into the graph as constants, inference only). Compile time (the
first call) is printed apart; the table's ratios are the eager time over the variant's.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from ddpmkit.core.precision import fast_bf16
from ddpmkit.networks import UNet
from ddpmkit.training.sizing import unet_ladder

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def variants(network: torch.nn.Module) -> dict[str, Callable[..., torch.Tensor]]:
    """The callables compared; each compiled one is compiled on its first call, with its own
    inductor options (none leak into the others)."""

    def compiled(**options: object) -> Callable[..., torch.Tensor]:
        return torch.compile(network, dynamic=False, **options)  # type: ignore[return-value]

    return {
        "eager": network,
        "inference_mode": network,
        "default": compiled(),
        "max-autotune": compiled(mode="max-autotune-no-cudagraphs"),
        "freezing": compiled(options={"freezing": True}),
    }


def make_call(
    function: Callable[..., torch.Tensor],
    context: Callable[[], object],
    dtype: torch.dtype,
    x: torch.Tensor,
    t: torch.Tensor,
) -> Callable[[], object]:
    """One denoiser-sized network call under ``context`` and autocast to ``dtype``."""

    def call() -> object:
        with context(), torch.autocast("cpu", dtype, enabled=dtype != torch.float32):  # type: ignore[attr-defined]
            return function(x, t)

    return call


def timed(call: Callable[[], object], repeats: int) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        call()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=28)
    parser.add_argument("--rungs", default="tiny,small")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--precisions", default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    fast = fast_bf16(torch.device("cpu")) is not None
    precisions = args.precisions.split(",") if args.precisions else ["fp32"] + ["bf16"] * fast
    print(f"| rung ({args.size}×{args.size}, batch {args.batch}) | precision | variant | "
          "ms per call | eager / variant | first call (s) |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- |")
    for rung in args.rungs.split(","):
        config = dict(unet_ladder((1, args.size, args.size)))[rung]
        for precision in precisions:
            torch.manual_seed(0)
            network = UNet(config).eval()  # type: ignore[arg-type]
            x = torch.randn(args.batch, 1, args.size, args.size)
            t = torch.full((args.batch,), 500.0)
            dtype = DTYPES[precision]
            calls: dict[str, Callable[[], object]] = {}
            first: dict[str, float] = {}
            for name, function in variants(network).items():
                context = torch.inference_mode if name != "eager" else torch.no_grad

                call = make_call(function, context, dtype, x, t)
                start = time.perf_counter()
                call()
                first[name] = time.perf_counter() - start
                calls[name] = call
            seconds: dict[str, list[float]] = {name: [] for name in calls}
            for _ in range(args.rounds):  # interleaved rounds: the machine's drift hits all alike
                for name, call in calls.items():
                    seconds[name].append(timed(call, args.repeats))
            eager = statistics.median(seconds["eager"])
            for name, values in seconds.items():
                median = statistics.median(values)
                print(f"| {rung} | {precision} | {name} | {1000 * median:.2f} | "
                      f"{eager / median:.2f} | {first[name]:.1f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
