"""Sizes that set memory are checked against what the device has before anything is allocated:
one number (a batch, a width, a resolution, a chain length) must not take the machine down."""

from __future__ import annotations

from pathlib import Path

import torch

GIB = 2**30


def available_bytes(device: torch.device, meminfo: Path = Path("/proc/meminfo")) -> int | None:
    """The memory a new allocation can take on ``device`` (CPU: MemAvailable; CUDA: free), or
    None where it cannot be read.

    Args:
        device: where the tensors would live.
        meminfo: Linux's memory report (a test may give another).
    """
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def require_memory(needed: float, what: str, device: torch.device, hint: str) -> None:
    """A ValueError naming ``what``, the estimate and the limit when ``needed`` bytes exceed what
    ``device`` has available (nothing is checked where that cannot be read).

    Args:
        needed: the estimated bytes (an under-estimate: only what cannot fit is refused).
        what: the work and the options that size it, for the message.
        device: where the tensors would live.
        hint: which option to lower.
    """
    available = available_bytes(device)
    if available is None or needed <= available:
        return
    raise ValueError(
        f"{what} needs at least {needed / GIB:,.1f} GiB, but {available / GIB:,.1f} GiB are "
        f"available on {device}; {hint}"
    )
