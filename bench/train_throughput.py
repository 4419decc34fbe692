"""Training and sampling speed of the digits preset's U-Net: fp32 against bf16 autocast, side by side.

    python bench/train_throughput.py [--repeats 20]

Times both precisions in one run and prints their ratio, so the comparison survives a noisy machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext

import torch

from ddpmkit.config.parsing import from_dict
from ddpmkit.config.presets import PRESETS
from ddpmkit.config.schema import RunConfig
from ddpmkit.networks import UNet


def timed(fn: Callable[[], None], repeats: int) -> float:
    """Mean seconds per call after one warm-up call."""
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def precision(bf16: bool) -> AbstractContextManager:
    return torch.autocast("cpu", torch.bfloat16) if bf16 else nullcontext()


def measure(
    unet: UNet, train_batch: int, sample_batch: int, bf16: bool, repeats: int
) -> tuple[float, float]:
    """Seconds per training step and per no-grad forward pass."""
    optimizer = torch.optim.AdamW(unet.parameters(), lr=1e-4)
    x, x_sample = torch.randn(train_batch, 1, 8, 8), torch.randn(sample_batch, 1, 8, 8)
    t, t_sample = torch.rand(train_batch) * 999, torch.full((sample_batch,), 500.0)

    def train_step() -> None:
        with precision(bf16):
            loss = (unet(x, t).float() - x).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    def forward() -> None:
        with torch.no_grad(), precision(bf16):
            unet(x_sample, t_sample)

    return timed(train_step, repeats), timed(forward, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20, help="timed calls per measurement")
    args = parser.parse_args()
    config = from_dict(RunConfig, PRESETS["digits"])
    unet = UNet(dataclasses.replace(config.model.unet, in_channels=1))
    b_train, b_sample = config.train.batch_size, config.sample.batch_size
    rows = {
        name: measure(unet, b_train, b_sample, name == "bf16", args.repeats)
        for name in ("fp32", "bf16")
    }
    params = sum(p.numel() for p in unet.parameters())
    print(f"digits U-Net, {params:,} parameters, {torch.get_num_threads()} threads")
    print(f"| precision | train step (batch {b_train}) | forward (batch {b_sample}) |")
    print("| --- | --- | --- |")
    for name, (step, forward) in rows.items():
        print(f"| {name} | {step * 1e3:.1f} ms | {forward * 1e3:.1f} ms |")
    (s32, f32), (s16, f16) = rows["fp32"], rows["bf16"]
    print(f"bf16 speed-up: training ×{s32 / s16:.2f}, sampling ×{f32 / f16:.2f}")


if __name__ == "__main__":
    main()
