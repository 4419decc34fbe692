"""The fast paths of running a network: channels-last layout and torch.compile with its fallback.

Each must compute what the plain NCHW eager network computes, within float32 rounding of a
different summation order (convolution algorithms differ between layouts and fused kernels).
"""

from __future__ import annotations

import warnings

import pytest
import torch

from ddpmkit import UNet, UNetConfig
from ddpmkit.networks.execution import (
    CompileDecision,
    CompiledNetwork,
    accelerate,
    prefers_channels_last,
)

CONFIG = UNetConfig(
    in_channels=1, sample_size=8, base_channels=16, channel_mults=(1, 2),
    layers_per_block=1, attention_resolutions=(4,), norm_groups=8, dropout=0.0,
)  # fmt: skip
# float32 rounding of sums of ~10^3 products of O(1) terms, a few layers deep
TOLERANCE = {"rtol": 1e-4, "atol": 1e-5}


def _inputs() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return torch.randn(4, 1, 8, 8, generator=generator), torch.tensor([0.0, 10.0, 500.0, 999.0])


def test_channels_last_where_measured_faster() -> None:
    # CPU GroupNorm is NCHW-fast, and compiled CPU graphs gain nothing from NHWC (issue 28)
    assert not prefers_channels_last(torch.device("cpu"))
    assert prefers_channels_last(torch.device("cuda"))


def test_channels_last_network_computes_the_same_and_saves_the_same_weights() -> None:
    torch.manual_seed(0)
    reference = UNet(CONFIG)
    fast = UNet(CONFIG)
    fast.load_state_dict(reference.state_dict())
    fast.to(memory_format=torch.channels_last)
    assert fast.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    x, t = _inputs()
    torch.testing.assert_close(fast(x, t), reference(x, t), **TOLERANCE)
    for (name, a), (_, b) in zip(
        fast.state_dict().items(), reference.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name
    # and back: accelerate on an eager CPU network restores NCHW
    assert accelerate(fast) is fast
    assert fast.conv_in.weight.is_contiguous()


def test_compile_failure_falls_back_to_eager_with_one_warning(monkeypatch) -> None:
    def broken(*args, **kwargs):
        raise RuntimeError("no C++ compiler")

    monkeypatch.setattr(torch, "compile", lambda network, **options: broken)
    torch.manual_seed(0)
    network = UNet(CONFIG)
    compiled = accelerate(network, compile=True)
    assert isinstance(compiled, CompiledNetwork)
    assert list(compiled.parameters()) == list(network.parameters())
    x, t = _inputs()
    with pytest.warns(RuntimeWarning, match="torch.compile failed .*no C\\+\\+ compiler"):
        first = compiled(x, t)
    torch.testing.assert_close(first, network(x, t), rtol=0, atol=0)
    with warnings.catch_warnings(record=True) as later:
        warnings.simplefilter("always")
        compiled(x, t)  # eager from now on, silently
    assert not later


def test_errors_of_the_network_itself_still_surface(monkeypatch) -> None:
    # a "compiler" that works
    monkeypatch.setattr(torch, "compile", lambda network, **options: network)
    compiled = accelerate(UNet(CONFIG), compile=True)
    x, t = _inputs()
    compiled(x, t)
    with pytest.raises(ValueError, match="divisible"):
        compiled(torch.randn(1, 1, 7, 7), t[:1])


@pytest.mark.slow
def test_compiled_network_matches_eager_in_training_and_sampling() -> None:
    """A real torch.compile (about a minute on a 2-core CPU): forward and gradients agree."""
    torch.manual_seed(0)
    reference = UNet(CONFIG)
    network = UNet(CONFIG)
    network.load_state_dict(reference.state_dict())
    compiled = accelerate(network, compile=True)
    x, t = _inputs()
    with torch.no_grad():
        torch.testing.assert_close(compiled(x, t), reference(x, t), **TOLERANCE)
    compiled(x, t).square().mean().backward()
    reference(x, t).square().mean().backward()
    for a, b in zip(network.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-3, atol=1e-6)


def test_one_execution_section_for_train_and_sample() -> None:
    """precision and compile are declared once (the same help, the same default) for the train
    and sample sections, and an Execution resolves either section on a device."""
    import dataclasses

    from ddpmkit.config.execution import Execution
    from ddpmkit.config.schema import SampleConfig, TrainConfig

    def options(section: type) -> dict[str, tuple[object, object]]:
        fields = {f.name: f for f in dataclasses.fields(section)}
        return {
            name: (fields[name].default, fields[name].metadata) for name in ("precision", "compile")
        }

    assert options(TrainConfig) == options(SampleConfig)
    sample = SampleConfig(precision="bf16", compile=True)
    execution = Execution.of(torch.device("cpu"), sample)
    assert (execution.device, execution.precision, execution.compile) == (
        torch.device("cpu"),
        "bf16",
        True,
    )
    assert not execution.needs_grad_scaler()  # only fp16 scales its loss
    assert "bf16" in execution.describe()
    network = UNet(CONFIG)
    eager = Execution.of(torch.device("cpu"), TrainConfig(compile=False))
    assert eager.accelerate(network) is network
    auto = Execution.of(torch.device("cpu"), TrainConfig()).accelerate(network)
    assert isinstance(auto, CompiledNetwork) and auto.decision is not None  # the default: auto


def _decide(eager: float, compiled: float, units_left: float, **options: float) -> CompileDecision:
    """A decision fed one warm-up unit, eager units of ``eager`` s, a compiling unit and
    compiled units of ``compiled`` s (as long as it asks for them)."""
    decision = CompileDecision(**options)  # type: ignore[arg-type]
    decision.record(10.0, units_left)  # warm-up: not timed
    while decision.state == "eager":
        decision.record(eager, units_left)
    if decision.state == "compiling":
        decision.record(eager + 20.0, units_left)  # a 20 s compilation
        assert decision.compile_seconds == pytest.approx(20.0)
    while decision.state == "compiled":
        decision.record(compiled, units_left)
    return decision


def test_compile_decision_compiles_only_where_the_work_left_pays_for_it() -> None:
    # 0.1 s units: 5000 left are 500 s of work, under 20 × an expected 30 s compilation: a
    # compiled graph that turned out no faster would have cost more than 1/20 of the work
    short = _decide(0.1, 0.05, 5000)
    assert (short.state, short.use_compiled) == ("decided", False)
    assert "500 s of work left" in short.reason
    assert len(short.eager_seconds) == short.trials
    # 7000 left (700 s): compile, then keep the compiled graph, twice as fast
    long = _decide(0.1, 0.05, 7000)
    assert (long.state, long.use_compiled) == ("decided", True)
    assert "2.00× eager's speed after a 20 s compilation" in long.reason
    # ... unless the compiled units are not faster by the margin
    slower = _decide(0.1, 0.099, 7000)
    assert (slower.state, slower.use_compiled) == ("decided", False)
    assert slower.reason.startswith("eager: compiled units ran 1.01×")
    # the threshold follows payback and the expected cost
    assert _decide(0.1, 0.05, 5000, expected_compile_seconds=10.0, payback=40.0).use_compiled


def _counting_compiler(monkeypatch) -> list[tuple[int, ...]]:
    """A stand-in torch.compile that runs the network eagerly and records each call's x shape."""
    shapes: list[tuple[int, ...]] = []

    def compile(network, **options):
        def compiled(x, *args, **kwargs):
            shapes.append(tuple(x.shape))
            return network(x, *args, **kwargs)

        return compiled

    monkeypatch.setattr(torch, "compile", compile)
    return shapes


def test_auto_compiled_network_times_its_calls_and_keeps_one_shape(monkeypatch) -> None:
    """``auto``: eager until the decision compiles; then only the compiled shape runs compiled,
    and every call computes what the eager network computes."""
    shapes = _counting_compiler(monkeypatch)
    torch.manual_seed(0)
    network = UNet(CONFIG).eval()
    auto = accelerate(network, compile="auto")
    assert isinstance(auto, CompiledNetwork) and auto.decision is not None
    auto.decision.expected_compile_seconds = 0.0  # any work pays: the decision compiles
    auto.decision.margin = -1e9  # and keeps the graph whatever the timing
    x, t = _inputs()
    auto.expect_calls(20)
    with torch.no_grad():
        for _ in range(1 + auto.decision.trials):  # warm-up and eager units
            torch.testing.assert_close(auto(x, t), network(x, t), rtol=0, atol=0)
        assert shapes == [] and auto.decision.state == "compiling"
        for _ in range(1 + auto.decision.trials):  # compiling and compiled units
            auto(x, t)
        assert auto.decision.state == "decided" and auto.decision.use_compiled
        calls = len(shapes)
        torch.testing.assert_close(auto(x, t), network(x, t), rtol=0, atol=0)
        assert len(shapes) == calls + 1  # the decided shape runs compiled
        auto(x[:2], t[:2])  # a last, smaller batch: eager, no second compilation
        assert len(shapes) == calls + 1


def test_auto_stays_eager_for_short_work_and_after_a_failed_compilation(monkeypatch) -> None:
    shapes = _counting_compiler(monkeypatch)
    x, t = _inputs()
    short = accelerate(UNet(CONFIG), compile="auto")
    assert isinstance(short, CompiledNetwork) and short.decision is not None
    short.expect_calls(8)  # 8 calls of a few ms: nothing to pay a compilation with
    with torch.no_grad():
        for _ in range(8):
            short(x, t)
    assert (short.decision.state, short.decision.use_compiled, shapes) == ("decided", False, [])

    def broken(*args, **kwargs):
        raise RuntimeError("no C++ compiler")

    monkeypatch.setattr(torch, "compile", lambda network, **options: broken)
    failing = accelerate(UNet(CONFIG), compile="auto")
    assert isinstance(failing, CompiledNetwork) and failing.decision is not None
    failing.decision.expected_compile_seconds = 0.0
    failing.expect_calls(20)
    with torch.no_grad(), pytest.warns(RuntimeWarning, match="torch.compile failed"):
        for _ in range(12):
            failing(x, t)
    assert (failing.decision.state, failing.decision.use_compiled) == ("decided", False)
    assert failing.decision.reason == "eager: torch.compile failed"
