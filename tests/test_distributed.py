"""Data-parallel training under torchrun (gloo on the CPU): N processes train what one does.

Each process draws the whole global batch's randomness and keeps its rows, and
DistributedDataParallel averages the gradients, so the only difference to one process is the
order of the float sums in that average: after 20 AdamW steps the weights agree to ~1e-7 on this
CPU; the bound below is 100× that and still far below a single step's change (~1e-4).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from safetensors.torch import load_file

from ddpmkit.cli import main
from ddpmkit.training.distributed import Processes

TOY = ["--preset", "toy2d", "--train.batch_size", "64", "--train.log_every", "10",
       "--sample.num_samples", "8", "--diffusion.num_steps", "60", "--quiet"]  # fmt: skip
TOLERANCE = 1e-5


def torchrun(processes: int, *args: str, command: str = "train") -> None:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={processes}", "-m", "ddpmkit", command, *args]  # fmt: skip
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def max_difference(a: Path, b: Path) -> float:
    x, y = load_file(a), load_file(b)
    assert x.keys() == y.keys()
    return max(float((x[k] - y[k]).abs().max()) for k in x)


def test_two_processes_train_what_one_process_trains_and_resume_with_one(tmp_path):
    steps = ["--train.steps", "20", "--train.checkpoint_every", "10"]
    assert main(["train", "--out", str(tmp_path / "one"), *TOY, *steps]) == 0
    torchrun(2, "--out", str(tmp_path / "two"), *TOY, *steps)
    for which in ("model", "ema"):
        name = f"checkpoints/step-0000020/{which}.safetensors"
        assert max_difference(tmp_path / "one" / name, tmp_path / "two" / name) < TOLERANCE
    # the data order and the randomness are functions of (seed, step): another process count
    # continues the same run, and so do micro-batches whose gradients stay local (no_sync) until
    # the last one of the step
    half = ["--train.steps", "10", "--train.checkpoint_every", "10", "--train.grad_accum", "2"]
    torchrun(2, "--out", str(tmp_path / "switch"), *TOY, *half)
    assert main(["train", "--resume", "--out", str(tmp_path / "switch"), *TOY, *steps]) == 0
    name = "checkpoints/step-0000020/model.safetensors"
    assert max_difference(tmp_path / "one" / name, tmp_path / "switch" / name) < TOLERANCE
    rows = (tmp_path / "two" / "log.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in rows[1:]] == ["10", "20"]  # one log, from rank 0


def test_each_process_takes_its_rows_of_an_evenly_split_global_batch():
    assert [Processes(rank, 2).rows(8) for rank in (0, 1)] == [slice(0, 4), slice(4, 8)]
    assert Processes(1, 2).rows(8, parts=2) == slice(4, 8)
    with pytest.raises(ValueError, match="batch_size = 63 is the global batch; it must be"):
        Processes(0, 2).rows(63)
    with pytest.raises(ValueError, match=r"2 processes × train\.grad_accum = 2"):
        Processes(0, 2).rows(6, parts=2)


@pytest.mark.slow  # 12 s of torchrun; the check itself is the test above, in-process
def test_the_global_batch_must_split_evenly(tmp_path):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "ddpmkit", "train", "--out", str(tmp_path / "r"), *TOY,
               "--train.batch_size", "63", "--train.steps", "2"]  # fmt: skip
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode != 0
    assert "train.batch_size = 63 is the global batch; it must be divisible by the 2" in done.stderr


def test_under_torchrun_the_run_folder_must_be_named(monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["train", *TOY]) == 2
    assert "pass --out" in capsys.readouterr().err


def test_sharded_sampling_equals_one_process(tmp_path):
    """Each process draws its block of seeds; rank 0 joins them: the same samples as one process
    (to float rounding: the batches are composed differently, so kernels sum differently)."""
    run = tmp_path / "run"
    steps = ["--train.steps", "10", "--train.checkpoint_every", "10"]
    assert main(["train", "--out", str(run), *TOY, *steps]) == 0
    flags = ["--num_samples", "7", "--batch_size", "2", "--steps", "8", "--quiet"]
    assert main(["sample", str(run), "--out", str(tmp_path / "one.png"), *flags]) == 0
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "ddpmkit", "sample", str(run), "--out", str(tmp_path / "two.png"), *flags]  # fmt: skip
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    one = np.load(tmp_path / "one.npz")["samples"]
    two = np.load(tmp_path / "two.npz")["samples"]
    assert one.shape == two.shape == (7, 2)
    # float32 rounding (~1e-7 relative per operation) grows over 8 sampler steps of an untrained
    # net whose samples reach ±300: ~1e-5 relative here; a wrong seed would differ by O(1)
    np.testing.assert_allclose(two, one, rtol=1e-4, atol=1e-5)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "one.npz",
        "one.png",
        "run",
        "two.npz",
        "two.png",
    ]


@pytest.mark.slow  # the sharding it relies on is checked by test_sharded_sampling_equals_one_process
def test_sharded_likelihood_equals_one_process(tmp_path):
    """Each process evaluates its block of batches, each batch's noise seeded by its index, and
    the per-item values are joined by an exact sum: the report of one process, bit for bit (the
    same batches run the same kernels; a seeding or ordering fault would differ by ~1 bit/dim)."""
    run = tmp_path / "run"
    steps = ["--train.steps", "10", "--train.checkpoint_every", "10"]
    assert main(["train", "--out", str(run), *TOY, *steps]) == 0
    # the bound; the ODE goes through the same split and join
    flags = [str(run), "--nll", "vlb", "--num_samples", "7", "--batch_size", "2", "--quiet"]
    torchrun(1, *flags, "--out", str(tmp_path / "one.json"), command="eval")
    torchrun(2, *flags, "--out", str(tmp_path / "two.json"), command="eval")
    one, two = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("one", "two"))
    assert len(one["per_sample"]) == 7
    for key in ("per_sample", "bits_per_dim", "nfe", "terms_bpd", "prior_bpd"):
        assert one[key] == two[key], key


@pytest.mark.slow  # 14 s of torchrun; test_sharded_sampling_equals_one_process covers the shards
def test_sharded_png_folder_holds_every_sample_once(tmp_path):
    """Each process writes the PNGs of its own samples, named by their index in the whole set."""
    run = tmp_path / "run"
    tiny = ["--preset", "digits", "--model.unet.base_channels", "16", "--model.unet.channel_mults",
            "1,2", "--model.unet.norm_groups", "8", "--diffusion.num_steps", "40",
            "--train.steps", "2", "--train.batch_size", "8", "--sample.num_samples", "2",
            "--quiet"]  # fmt: skip
    assert main(["train", "--out", str(run), *tiny]) == 0
    flags = [str(run), "--num_samples", "5", "--steps", "3", "--sampler", "ddim", "--quiet",
             "--format", "png-folder"]  # fmt: skip
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "ddpmkit", "sample", *flags, "--out", str(tmp_path / "two.png")]  # fmt: skip
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert main(["sample", *flags, "--out", str(tmp_path / "one.png")]) == 0
    names = sorted(p.name for p in (tmp_path / "two").iterdir())
    assert names == [f"{i:06d}.png" for i in range(5)]
    for name in names:  # the same pictures, up to a grey level of float rounding
        a, b = (np.asarray(Image.open(tmp_path / f / name), dtype=int) for f in ("one", "two"))
        assert np.abs(a - b).max() <= 1


@pytest.mark.slow  # ~20 s of torchrun; the single-process stop is in the default suite
def test_sigterm_under_torchrun_stops_every_process_after_the_same_step(tmp_path):
    """SIGTERM to torchrun (which forwards it to its workers) after the first checkpoint: the
    processes agree on one step, rank 0 checkpoints it, and the run resumes to the end."""
    import signal
    import time

    run = tmp_path / "run"
    flags = [*TOY, "--train.steps", "3000", "--train.checkpoint_every", "100"]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node=2", "-m", "ddpmkit", "train", "--out", str(run), *flags]  # fmt: skip
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 120
    while not (run / "checkpoints" / "step-0000100").exists() and process.poll() is None:
        assert time.monotonic() < deadline, "the run never reached its checkpoint"
        time.sleep(0.01)
    process.send_signal(signal.SIGTERM)
    _, error = process.communicate(timeout=120)
    assert process.returncode != 0
    saved = sorted(p.name for p in (run / "checkpoints").iterdir())
    step = int(saved[-1].removeprefix("step-"))
    assert 100 <= step < 3000 and f"interrupted by SIGTERM at step {step}" in error, error[-2000:]
    more = [*TOY, "--train.steps", str(step + 20), "--train.checkpoint_every", "100"]
    torchrun(2, "--resume", "--out", str(run), *more)
    steps = [int(line.split(",")[0]) for line in (run / "log.csv").read_text().splitlines()[1:]]
    assert steps == sorted(set(steps)) and steps[-1] == step + 20  # no duplicate log rows
