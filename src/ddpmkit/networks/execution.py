"""Running a network fast on its device: the memory layout its convolutions prefer, and an optional
``torch.compile`` that falls back to eager execution where compilation fails.

Measured (docs/benchmarks.md): on CPUs PyTorch's channels-last GroupNorm kernel is several times
slower than the NCHW one, so eager CPU runs stay NCHW; a compiled graph fuses the normalisation
away and is fastest channels-last, as are CUDA's tensor-core convolutions.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

__all__ = ["CompiledNetwork", "accelerate", "prefers_channels_last", "set_layout"]


def prefers_channels_last(device: torch.device, compiled: bool) -> bool:
    """Whether convolutions run faster in NHWC than in NCHW: on CUDA, and in compiled graphs."""
    return device.type == "cuda" or compiled


class CompiledNetwork(nn.Module):
    """``torch.compile(network)``, or ``network`` itself after one warning if compilation fails
    (no C++ compiler, an unsupported operation). ``network`` is its only submodule, so its
    parameters and train/eval mode are the network's."""

    # Set with object.__setattr__, so that nn.Module does not register it as a submodule.
    _compiled: Callable[..., Any] | None

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network
        # dynamic=False: one graph per input shape. Symbolic shapes fail in Inductor for odd
        # sizes such as 28 → 14 → 7, and the networks of a run see few distinct shapes.
        compiled = torch.compile(network, dynamic=False)
        object.__setattr__(self, "_compiled", compiled)  # not a second submodule
        self._proven = False  # a compiled call has succeeded: later errors are the network's own

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if self._compiled is None:
            return self.network(*args, **kwargs)
        if self._proven:
            return self._compiled(*args, **kwargs)
        try:
            output = self._compiled(*args, **kwargs)
        except Exception as error:  # compilers fail in many ways; eager is always correct
            warnings.warn(
                f"torch.compile failed ({type(error).__name__}: {str(error)[:200]}); "
                "running the network without compilation",
                RuntimeWarning,
                stacklevel=2,
            )
            object.__setattr__(self, "_compiled", None)
            return self.network(*args, **kwargs)
        self._proven = True
        return output


def accelerate(network: nn.Module, *, compile: bool = False) -> nn.Module:
    """``network`` in the layout its device prefers (``prefers_channels_last``), compiled if asked.

    The layout is set in place (the weights' values, names and state dict are unchanged);
    the returned object is what the denoiser should call.
    """
    set_layout(network, compiled=compile)
    return CompiledNetwork(network) if compile else network


def set_layout(network: nn.Module, *, compiled: bool) -> None:
    """Put the weights, in place, in the layout ``prefers_channels_last`` picks for their device."""
    weight = next(network.parameters(), None)
    device = weight.device if weight is not None else torch.device("cpu")
    channels_last = prefers_channels_last(device, compiled)
    network.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
