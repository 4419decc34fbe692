"""One number must not take the machine down (issue 29): sizes that set memory are checked
before anything is allocated, chains are bounded, grids are capped, and foreign config values of
the wrong JSON type are refused by name."""

from __future__ import annotations

import resource
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from conftest import tiny_digits_config

from ddpmkit import RunConfig, Trainer
from ddpmkit.config.parsing import ConfigError, from_dict
from ddpmkit.data.arrays import read_array_file
from ddpmkit.memory import available_bytes, require_memory
from ddpmkit.outputs import GRID_IMAGES, grid_count, save_picture
from ddpmkit.storage.json_types import check_json_types


def test_available_memory_is_read_from_meminfo(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       1000 kB\nMemAvailable:    512 kB\n")
    assert available_bytes(torch.device("cpu"), meminfo) == 512 * 1024
    assert available_bytes(torch.device("cpu"), tmp_path / "absent") is None
    assert available_bytes(torch.device("cpu")) is not None  # this Linux machine


def test_a_run_that_cannot_fit_is_refused_before_its_network_is_built(tmp_path, monkeypatch):
    monkeypatch.setattr("ddpmkit.memory.available_bytes", lambda device: 2**20)  # 1 MiB
    built = []
    monkeypatch.setattr("ddpmkit.training.step.build_network",
                        _counting(built, "ddpmkit.training.step.build_network"))  # fmt: skip
    with pytest.raises(
        ValueError,
        match=r"training [\d,]+ parameters .* needs at least .* GiB, "
        r"but 0\.0 GiB are available on cpu; lower model\.unet\.base_channels",
    ):
        Trainer(tiny_digits_config(), tmp_path / "run")
    assert built == ["meta"]  # only the estimate's network, on the meta device, was built


def _counting(built: list[str], name: str):
    import importlib

    module, _, attribute = name.rpartition(".")
    original = getattr(importlib.import_module(module), attribute)

    def build(config):
        network = original(config)
        built.append(next(network.parameters()).device.type)
        return network

    return build


def test_the_chain_length_is_bounded():
    with pytest.raises(
        ConfigError, match=r"diffusion.num_steps = 1000000000 is outside 1 … 100,000"
    ):
        from_dict(RunConfig, {"diffusion": {"num_steps": 1_000_000_000}})


def test_an_array_header_claiming_more_than_is_stored_is_refused(tmp_path):
    path = tmp_path / "bomb.npy"
    with path.open("wb") as handle:
        header = {"descr": "<f4", "fortran_order": False, "shape": (10**6, 10**6)}
        np.lib.format.write_array_header_1_0(handle, header)
        handle.write(b"\0" * 64)
    with pytest.raises(
        ValueError, match=r"bomb\.npy: its header claims shape \(1000000, 1000000\)"
    ):
        read_array_file(path)
    archive = tmp_path / "bomb.npz"
    np.savez(archive, images=np.zeros((2, 3), np.float32))
    read_array_file(archive)  # an honest archive loads


def test_a_refused_size_never_allocates_under_a_memory_limit(tmp_path):
    """In a process whose address space is limited to 6 GiB, sizes of hundreds of GiB end in
    one-line errors (exit 2), not in the allocator: nothing of them was allocated."""
    limit = 6 * 2**30
    script = textwrap.dedent(f"""
        import resource, sys
        resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))
        from ddpmkit.cli import main
        sys.exit(main(sys.argv[1:]))
    """)
    for flags in (["--preset", "toy2d", "--data.toy_size", "10000000000"],
                  ["--preset", "digits", "--model.unet.base_channels", "100000"]):  # fmt: skip
        done = subprocess.run(
            [sys.executable, "-c", script, "train", "--quiet", "--out", str(tmp_path / "r"), *flags],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert done.returncode == 2, done.stderr[-2000:]
        assert "needs at least" in done.stderr and "Traceback" not in done.stderr
    assert resource.getrlimit(resource.RLIMIT_AS)[0] != limit  # the limit was the child's only


def test_require_memory_names_the_work_the_estimate_and_the_limit(monkeypatch):
    monkeypatch.setattr("ddpmkit.memory.available_bytes", lambda device: 2**30)
    require_memory(2**29, "half", torch.device("cpu"), "fine")
    with pytest.raises(
        ValueError, match=r"^twice needs at least 2\.0 GiB, but 1\.0 GiB .*; lower it"
    ):
        require_memory(2**31, "twice", torch.device("cpu"), "lower it")


def test_a_grid_shows_at_most_its_cap_of_images(tmp_path):
    from PIL import Image

    many = torch.zeros(3000, 1, 8, 8)
    assert grid_count(many) == GRID_IMAGES
    save_picture(many, tmp_path / "grid.png")
    with Image.open(tmp_path / "grid.png") as picture:
        assert picture.width * picture.height < 20_000_000
    large = torch.zeros(400, 3, 512, 512)
    assert grid_count(large) < 400  # bounded by pixels, not only by count


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [("clip_sample", "false", "true or false"), ("num_train_timesteps", "1000", "an integer"),
     ("beta_start", "1e-4", "a finite number"), ("sample_size", [32, "32"], "an integer or a list"),
     ("flip_sin_to_cos", 1, "true or false"), ("in_channels", 3.0, "an integer")],
)  # fmt: skip
def test_foreign_config_values_of_the_wrong_type_are_refused_by_name(key, value, expected):
    with pytest.raises(ValueError, match=rf"scheduler_config\.json: {key} must be {expected}"):
        check_json_types({key: value}, "scheduler_config.json")
    check_json_types({key: None, "sample_size": [32, 48], "clip_sample": False}, "ok.json")
