"""One training process per run folder (an OS lock that dies with its process), and SIGTERM or
Ctrl-C between steps: the step in progress is checkpointed and the run resumes bit for bit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch
from conftest import tiny_digits_config
from safetensors.torch import load_file

from ddpmkit import Trainer
from ddpmkit.cli import main
from ddpmkit.training.run_lock import LOCK_FILE, RunLock, RunLockedError


def test_a_second_trainer_on_a_run_folder_is_refused_while_the_first_holds_it(tmp_path):
    config = tiny_digits_config()
    first = Trainer(config, tmp_path / "run")
    with pytest.raises(RunLockedError, match=f"run folder .*run is in use: process {os.getpid()}"):
        Trainer(config, tmp_path / "run", resume=True)
    first.fit()  # training ends: the lock is let go
    resumed = Trainer(config, tmp_path / "run", resume=True)
    assert resumed.step == config.train.steps


def test_the_lock_file_alone_leaves_a_folder_empty_for_a_new_run(tmp_path):
    lock = RunLock(tmp_path / "run")
    lock.acquire()
    lock.release()
    assert [p.name for p in (tmp_path / "run").iterdir()] == [LOCK_FILE]
    Trainer(tiny_digits_config(), tmp_path / "run")  # claims it


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    """A process holding the lock names itself while alive; SIGKILLed, it holds nothing."""
    holder = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from ddpmkit.training.run_lock import RunLock
        lock = RunLock(Path({str(tmp_path / "run")!r}))
        lock.acquire()
        print("locked", flush=True)
        time.sleep(60)
    """)
    process = subprocess.Popen([sys.executable, "-c", holder], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdout.readline().strip() == "locked"
    with pytest.raises(RunLockedError, match=f"process {process.pid} on "):
        RunLock(tmp_path / "run").acquire()
    assert main(["train", "--resume", "--out", str(tmp_path / "run"), "--quiet"]) == 2
    process.send_signal(signal.SIGKILL)
    process.wait()
    lock = RunLock(tmp_path / "run")
    lock.acquire()
    assert lock.held


FLAGS = ["--preset", "toy2d", "--quiet", "--train.steps", "300", "--train.checkpoint_every",
         "100", "--train.log_every", "5", "--diffusion.num_steps", "60",
         "--sample.num_samples", "8"]  # fmt: skip


def test_sigterm_checkpoints_the_step_and_the_run_resumes_bit_for_bit(tmp_path):
    """SIGTERM a real `ddpmkit train` after its first checkpoint: it exits 143 with a checkpoint
    of the step it was on and the command that continues; resumed, its final weights equal an
    unbroken run's."""
    run = tmp_path / "stopped"
    command = [sys.executable, "-m", "ddpmkit", "train", "--out", str(run), *FLAGS]
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 120
    while not (run / "checkpoints" / "step-0000100").exists() and process.poll() is None:
        assert time.monotonic() < deadline, "the run never reached its checkpoint"
        time.sleep(0.01)
    process.send_signal(signal.SIGTERM)
    _, error = process.communicate(timeout=60)
    assert process.returncode == 143, error
    saved = sorted(p.name for p in (run / "checkpoints").iterdir())
    step = int(saved[-1].removeprefix("step-"))
    assert 100 <= step < 300, saved
    assert f"interrupted by SIGTERM at step {step}; its last checkpoint is {saved[-1]}" in error
    assert f"Continue with: ddpmkit train --resume --out {run}" in error
    assert main(["train", "--resume", "--out", str(run), *FLAGS]) == 0
    assert main(["train", "--out", str(tmp_path / "whole"), *FLAGS]) == 0
    name = "checkpoints/step-0000300/model.safetensors"
    stopped, whole = load_file(run / name), load_file(tmp_path / "whole" / name)
    assert all(torch.equal(stopped[k], whole[k]) for k in whole)
