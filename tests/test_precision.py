"""train.precision / sample.precision: auto picks bf16 only where the hardware has bf16 units."""

import pytest
import torch

from ddpmkit import RunConfig
from ddpmkit.config.parsing import from_dict, upgrade
from ddpmkit.core.precision import (
    autocast,
    cpu_flags,
    describe_precision,
    fast_bf16,
    needs_grad_scaler,
    resolve_precision,
)

CPU = torch.device("cpu")


@pytest.mark.parametrize(
    ("flags", "reason"),
    [
        ({"avx512f", "amx_tile", "amx_bf16", "avx512_bf16"}, "amx_bf16"),  # Sapphire Rapids
        ({"avx512f", "avx512_bf16"}, "avx512_bf16"),  # Zen 4
        ({"avx2", "fma"}, None),  # Zen 3 and older: bf16 is emulated, slower than fp32
        (set(), None),
    ],
)
def test_bf16_counts_as_fast_only_with_bf16_units(flags, reason):
    assert fast_bf16(CPU, frozenset(flags)) == reason


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512_bf16\n")
    assert cpu_flags(cpuinfo) == {"fpu", "avx2", "avx512_bf16"}
    assert cpu_flags(tmp_path / "missing") == frozenset()


def test_explicit_precisions_are_kept_and_auto_follows_the_machine():
    assert resolve_precision("fp32", CPU) == "fp32"
    assert resolve_precision("bf16", CPU) == "bf16"
    expected = "bf16" if fast_bf16(CPU) else "fp32"
    assert resolve_precision("auto", CPU) == expected
    assert describe_precision("auto", CPU).startswith(f"{expected} (auto: ")
    assert resolve_precision("fp16", CPU) == "fp16"
    with pytest.raises(ValueError, match="unknown precision 'fp8'"):
        resolve_precision("fp8", CPU)  # type: ignore[arg-type]


@pytest.mark.parametrize(("bf16_units", "expected"), [(True, "bf16"), (False, "fp16")])
def test_auto_on_a_gpu_is_bf16_or_else_fp16_with_a_gradient_scaler(
    monkeypatch, bf16_units, expected
):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: bf16_units)
    gpu = torch.device("cuda")
    assert resolve_precision("auto", gpu) == expected
    assert needs_grad_scaler("auto", gpu) == (expected == "fp16")
    assert not needs_grad_scaler("auto", CPU) and needs_grad_scaler("fp16", CPU)


def test_autocast_runs_the_network_in_the_resolved_dtype():
    layer = torch.nn.Linear(4, 4)
    x = torch.randn(2, 4)
    with autocast("bf16", CPU):
        assert layer(x).dtype == torch.bfloat16
    with autocast("fp16", CPU):
        assert layer(x).dtype == torch.float16
    with autocast("fp32", CPU):
        assert layer(x).dtype == torch.float32


def test_configs_written_with_train_bf16_still_load():
    old = {"train": {"bf16": True, "steps": 5}}
    config = from_dict(RunConfig, upgrade(old))
    assert config.train.precision == "bf16" and config.train.steps == 5
    assert from_dict(RunConfig, upgrade({"train": {"bf16": False}})).train.precision == "fp32"
