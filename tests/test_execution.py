"""The fast paths of running a network: channels-last layout and torch.compile with its fallback.

Each must compute what the plain NCHW eager network computes, within float32 rounding of a
different summation order (convolution algorithms differ between layouts and fused kernels).
"""

from __future__ import annotations

import warnings

import pytest
import torch

from ddpmkit import UNet, UNetConfig
from ddpmkit.networks.execution import CompiledNetwork, accelerate, prefers_channels_last

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
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert not prefers_channels_last(cpu, compiled=False)  # eager CPU GroupNorm is NCHW-fast
    assert prefers_channels_last(cpu, compiled=True)
    assert prefers_channels_last(gpu, compiled=False)


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
    assert Execution.of(torch.device("cpu"), TrainConfig()).accelerate(network) is network
