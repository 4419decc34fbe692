"""Which floating-point precision the network runs in: fp32, bf16 autocast, or what the hardware
does fastest (``auto``: bf16 where it has bf16 arithmetic units, fp32 otherwise)."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Literal

import torch

Precision = Literal["auto", "fp32", "bf16"]
PRECISIONS: tuple[Precision, ...] = ("auto", "fp32", "bf16")
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")
"""CPU features that make bf16 convolutions and matmuls faster than fp32 (Intel AMX, AVX512-BF16)."""


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The CPU's feature flags as Linux reports them (empty where there is no /proc/cpuinfo)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


def fast_bf16(device: torch.device, flags: frozenset[str] | None = None) -> str | None:
    """Why bf16 is faster than fp32 on ``device`` (e.g. "amx_bf16"), or None where it is not."""
    if device.type == "cuda":
        return "CUDA bf16" if torch.cuda.is_bf16_supported() else None
    if device.type != "cpu":
        return None
    flags = cpu_flags() if flags is None else flags
    return next((flag for flag in BF16_CPU_FLAGS if flag in flags), None)


def resolve_precision(precision: Precision, device: torch.device) -> Literal["fp32", "bf16"]:
    """``auto`` becomes bf16 where the device has bf16 units, else fp32; the others stay."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        return "bf16" if fast_bf16(device) else "fp32"
    return precision


def describe_precision(precision: Precision, device: torch.device) -> str:
    """One line for the user: the precision used on ``device`` and why."""
    chosen = resolve_precision(precision, device)
    if precision != "auto":
        return f"{chosen} (as asked)"
    reason = fast_bf16(device)
    return f"{chosen} (auto: {reason})" if reason else f"{chosen} (auto: no bf16 units on {device})"


def autocast(precision: Precision, device: torch.device) -> AbstractContextManager:
    """bf16 autocast for the network when the precision resolves to bf16, else nothing."""
    if resolve_precision(precision, device) == "bf16":
        return torch.autocast(device.type, torch.bfloat16)
    return nullcontext()
