"""Where and how the network runs: the device, its precision and compilation, declared once for the
train and sample sections and resolved once per command into an `Execution`.

``train``, ``sample`` and ``eval`` all run their network through an ``Execution``: its ``autocast``
around every forward pass, its ``prepare`` on the network before the first one.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import nn

from ddpmkit.core.precision import Precision, autocast, describe_precision, needs_grad_scaler
from ddpmkit.networks.execution import CompiledNetwork, CompileMode, accelerate, set_layout

PRECISION_HELP = (
    "the network's arithmetic; bf16/fp16 are autocast, auto is bf16 where the device has bf16 "
    "units (fp16 on GPUs without them) and fp32 elsewhere"
)
COMPILE_HELP = (
    "torch.compile the network: true, false, or auto: tried only where the work left is 20x an "
    "expected 30 s compilation (a C++ compiler is needed), and kept only if the timed compiled "
    "steps run faster; a failed compilation falls back to eager with a warning"
)


def precision_field() -> Any:
    """The ``precision`` option of a config section that runs the network."""
    return field(default="fp32", metadata={"help": PRECISION_HELP})


def compile_field() -> Any:
    """The ``compile`` option of a config section that runs the network."""
    return field(default="auto", metadata={"help": COMPILE_HELP, "choices": (True, False, "auto")})


class ExecutionOptions(Protocol):
    """A config section with the execution options (``train`` and ``sample``)."""

    @property
    def precision(self) -> Precision: ...

    @property
    def compile(self) -> CompileMode: ...


@dataclass(frozen=True)
class Execution:
    """The device a command runs on and how its network runs there."""

    device: torch.device
    precision: Precision = "fp32"
    compile: CompileMode = False

    @classmethod
    def of(cls, device: torch.device, options: ExecutionOptions) -> Execution:
        """The execution a config section (``train`` or ``sample``) asks for on ``device``."""
        return cls(device, options.precision, options.compile)

    def autocast(self) -> AbstractContextManager[Any]:
        """The precision's autocast around a forward pass (nothing for fp32)."""
        return autocast(self.precision, self.device)

    def needs_grad_scaler(self) -> bool:
        """Whether training must scale its loss (fp16)."""
        return needs_grad_scaler(self.precision, self.device)

    def describe(self) -> str:
        """One line for the user: the precision used and why."""
        return describe_precision(self.precision, self.device)

    def set_layout(self, network: nn.Module) -> None:
        """Put ``network``'s weights, in place, in the memory layout its convolutions prefer."""
        set_layout(network)

    def prepare(self, network: nn.Module) -> nn.Module:
        """What a denoiser should call: ``network`` compiled when asked, or where timing shows
        that it pays (``auto``); eager on failure. Its layout must have been set (``set_layout``)
        before."""
        if self.compile is False:
            return network
        return CompiledNetwork(network, auto=self.compile == "auto")

    def accelerate(self, network: nn.Module) -> nn.Module:
        """``set_layout`` then ``prepare``: the network ready to run."""
        return accelerate(network, compile=self.compile)


def pick_device(name: str, option: str = "train.device") -> torch.device:
    """ "auto" is CUDA when available, else the CPU; another name must be a device torch can use
    here, else a one-line error naming ``option``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise ValueError(
            f"{option} {name!r} is not a device name torch knows (cpu, cuda, cuda:1, …)"
        ) from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{option} {name!r} asks for CUDA, but torch sees no GPU")
    try:
        torch.empty(1, device=device)
    except (RuntimeError, AssertionError) as error:
        raise ValueError(
            f"{option} {name!r}: this PyTorch build or machine has no {device.type} backend "
            "(use cpu, or cuda where torch sees a GPU)"
        ) from error
    return device
