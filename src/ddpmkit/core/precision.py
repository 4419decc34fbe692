"""Which floating-point precision the network runs in: fp32, bf16 or fp16 autocast, or what the
hardware does fastest (``auto``: bf16 where it has bf16 arithmetic units, fp16 on GPUs without
them, fp32 otherwise). fp16 training needs a gradient scaler (``needs_grad_scaler``)."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Literal

import torch

Precision = Literal["auto", "fp32", "bf16", "fp16"]
Resolved = Literal["fp32", "bf16", "fp16"]
PRECISIONS: tuple[Precision, ...] = ("auto", "fp32", "bf16", "fp16")
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
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


def resolve_precision(precision: Precision, device: torch.device) -> Resolved:
    """``auto`` becomes bf16 where the device has bf16 units, fp16 on other CUDA devices, else
    fp32; the others stay."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        if fast_bf16(device):
            return "bf16"
        return "fp16" if device.type == "cuda" else "fp32"
    return precision


def describe_precision(precision: Precision, device: torch.device) -> str:
    """One line for the user: the precision used on ``device`` and why."""
    chosen = resolve_precision(precision, device)
    if precision != "auto":
        return f"{chosen} (as asked)"
    reason = fast_bf16(device) or ("CUDA without bf16" if chosen == "fp16" else None)
    return f"{chosen} (auto: {reason})" if reason else f"{chosen} (auto: no bf16 units on {device})"


def autocast(precision: Precision, device: torch.device) -> AbstractContextManager[None]:
    """bf16 or fp16 autocast for the network when the precision resolves to one, else nothing."""
    chosen = resolve_precision(precision, device)
    if chosen in AUTOCAST_DTYPES:
        return torch.autocast(device.type, AUTOCAST_DTYPES[chosen])
    return nullcontext()


def needs_grad_scaler(precision: Precision, device: torch.device) -> bool:
    """fp16's narrow exponent range underflows small gradients unless the loss is scaled
    (Micikevicius et al. 2018, §3.2); bf16 and fp32 need no scaling."""
    return resolve_precision(precision, device) == "fp16"
