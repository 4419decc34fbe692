"""Running a network fast on its device: the memory layout its convolutions prefer, and
``torch.compile`` — always, or where timing on the device shows that it pays (``auto``) — with a
fall-back to eager execution where compilation fails.

Measured (docs/benchmarks.md, issue 28): on CPUs PyTorch's channels-last GroupNorm kernel is
several times slower than the NCHW one, and compiled graphs run no faster channels-last than NCHW,
so CPU networks stay NCHW; CUDA's tensor-core convolutions are fastest channels-last. A compiled
small U-Net samples 1.2–1.7× faster than eager on a 2-core CPU after a compilation of 5–35 s,
but trains at 0.9–1.2× eager's speed, so whether to compile depends on how much work follows and
on the device: `CompileDecision` times it.
"""

from __future__ import annotations

import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

__all__ = [
    "CompileDecision",
    "CompileMode",
    "CompiledNetwork",
    "accelerate",
    "prefers_channels_last",
    "set_layout",
    "synchronize",
]

CompileMode = bool | Literal["auto"]
"""``True``: always compile; ``False``: never; ``"auto"``: where timing shows that it pays."""


def prefers_channels_last(device: torch.device) -> bool:
    """Whether convolutions run faster in NHWC than in NCHW: on CUDA (not on CPUs, measured)."""
    return device.type == "cuda"


@dataclass
class CompileDecision:
    """Compile when the work left pays for the compilation, and keep the graph only if it is
    faster, both decided by timing units of work (training steps, network calls) on the device.

    The first unit warms up; the next ``trials`` are timed eager. If the work left at that rate
    is at least ``payback`` × the compilation's expected cost, the next unit compiles (its time,
    less an eager unit's, becomes the measured cost), and ``trials`` compiled units are timed:
    the compiled graph stays if their median beats eager's by ``margin``, else eager does.

    Args:
        expected_compile_seconds: what a compilation is assumed to cost before one is timed.
        payback: how many times the compilation's cost the eager work left must be.
        trials: units timed in each mode.
        margin: the fraction by which compiled units must be faster to be kept.
    """

    expected_compile_seconds: float = 30.0
    payback: float = 20.0
    """At most 1/20 of the work is lost when a compiled graph is tried and turns out no faster."""
    trials: int = 4
    margin: float = 0.10
    state: Literal["warm-up", "eager", "compiling", "compiled", "decided"] = "warm-up"
    eager_seconds: list[float] = field(default_factory=list)
    compiled_seconds: list[float] = field(default_factory=list)
    compile_seconds: float | None = None
    use_compiled: bool = False
    """Whether the next unit runs compiled."""
    reason: str = "not decided yet"

    def record(self, seconds: float, units_left: float) -> None:
        """A unit of work took ``seconds``; about ``units_left`` units follow."""
        if self.state == "warm-up":
            self.state = "eager"
        elif self.state == "eager":
            self.eager_seconds.append(seconds)
            if len(self.eager_seconds) >= self.trials:
                self._consider(units_left)
        elif self.state == "compiling":
            self.compile_seconds = max(seconds - self.eager_median, 0.0)
            self.state = "compiled"
        elif self.state == "compiled":
            self.compiled_seconds.append(seconds)
            if len(self.compiled_seconds) >= self.trials:
                self._keep_the_faster()

    def failed(self) -> None:
        """Compilation failed: eager from now on."""
        self.use_compiled, self.state = False, "decided"
        self.reason = "eager: torch.compile failed"

    @property
    def eager_median(self) -> float:
        """The median eager unit's seconds (0 before any is timed)."""
        return statistics.median(self.eager_seconds) if self.eager_seconds else 0.0

    def _consider(self, units_left: float) -> None:
        work_left = self.eager_median * max(units_left, 0.0)
        needed = self.payback * self.expected_compile_seconds
        if work_left < needed:
            self.state = "decided"
            self.reason = (
                f"eager: {work_left:.0f} s of work left, under {self.payback:g} × an expected "
                f"{self.expected_compile_seconds:.0f} s compilation"
            )
            return
        self.use_compiled, self.state = True, "compiling"

    def _keep_the_faster(self) -> None:
        compiled, eager = statistics.median(self.compiled_seconds), self.eager_median
        self.use_compiled = compiled < (1.0 - self.margin) * eager
        self.state = "decided"
        ratio = eager / compiled if compiled > 0 else float("inf")
        self.reason = (
            f"{'compiled' if self.use_compiled else 'eager'}: compiled units ran {ratio:.2f}× "
            f"eager's speed after a {self.compile_seconds or 0.0:.0f} s compilation"
        )


class CompiledNetwork(nn.Module):
    """``torch.compile(network)``, or ``network`` itself after one warning if compilation fails
    (no C++ compiler, an unsupported operation). ``network`` is its only submodule, so its
    parameters and train/eval mode are the network's.

    With ``auto`` calls run eager until ``decision`` says to compile. The caller times the units
    (``decision.record``); or, after ``expect_calls``, each forward call is a unit timed here.
    Only the input shapes of the calls that compiled run compiled, so a last, smaller batch does
    not trigger a second compilation.

    Args:
        network: the network to run.
        auto: compile where timing shows that it pays (`CompileDecision`), not always.
    """

    # Set with object.__setattr__, so that nn.Module does not register it as a submodule.
    _compiled: Callable[..., Any] | None

    def __init__(self, network: nn.Module, *, auto: bool = False) -> None:
        super().__init__()
        self.network = network
        # dynamic=False: one graph per input shape. Symbolic shapes fail in Inductor for odd
        # sizes such as 28 → 14 → 7, and the networks of a run see few distinct shapes.
        compiled = torch.compile(network, dynamic=False)
        object.__setattr__(self, "_compiled", compiled)  # not a second submodule
        self._proven = False  # a compiled call has succeeded: later errors are the network's own
        self.decision = CompileDecision() if auto else None
        self._shapes: set[tuple[Any, ...]] = set()  # auto: the input shapes compiled
        self._calls_left = 0  # auto: the calls expect_calls announced, less those made

    def expect_calls(self, calls: int) -> None:
        """Auto mode: about ``calls`` forward calls follow; each is timed as a unit of work."""
        self._calls_left = calls

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if self.decision is None:
            return self._run_compiled(args, kwargs)
        if self._calls_left <= 0 or self.decision.state == "decided":
            return self._run_decided(args, kwargs)
        self._calls_left -= 1
        start = time.perf_counter()
        output = self._run_decided(args, kwargs)
        if self._compiled is not None:
            if isinstance(output, torch.Tensor):
                synchronize(output.device)
            self.decision.record(time.perf_counter() - start, self._calls_left)
        return output

    def _run_decided(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        decision = self.decision
        assert decision is not None
        key = _shape_key(args, kwargs)
        if not decision.use_compiled or self._compiled is None:
            return self.network(*args, **kwargs)
        if decision.state == "decided" and key not in self._shapes:
            return self.network(*args, **kwargs)
        self._shapes.add(key)
        output = self._run_compiled(args, kwargs)
        if self._compiled is None:
            decision.failed()
        return output

    def _run_compiled(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
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
                stacklevel=3,
            )
            object.__setattr__(self, "_compiled", None)
            return self.network(*args, **kwargs)
        self._proven = True
        return output


def _shape_key(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """The shapes of a call's tensor arguments (what a static-shape graph is compiled for)."""
    values = [*args, *(kwargs[name] for name in sorted(kwargs))]
    return tuple(tuple(v.shape) if isinstance(v, torch.Tensor) else None for v in values)


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (a step's or a call's time is known once the device has
    done it)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def accelerate(network: nn.Module, *, compile: CompileMode = False) -> nn.Module:
    """``network`` in the layout its device prefers (``prefers_channels_last``), compiled as asked
    (``"auto"``: where timing shows that it pays).

    The layout is set in place (the weights' values, names and state dict are unchanged);
    the returned object is what the denoiser should call.
    """
    set_layout(network)
    if compile is False:
        return network
    return CompiledNetwork(network, auto=compile == "auto")


def set_layout(network: nn.Module) -> None:
    """Put the weights, in place, in the layout ``prefers_channels_last`` picks for their device."""
    weight = next(network.parameters(), None)
    device = weight.device if weight is not None else torch.device("cpu")
    channels_last = prefers_channels_last(device)
    network.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
