"""Messages that say what happened (issue 29, class 8)."""

from __future__ import annotations

import shutil

import pytest

from ddpmkit.cli import main
from ddpmkit.storage import checkpoints

TINY = [
    "--model.unet.base_channels", "16", "--model.unet.channel_mults", "1,2",
    "--model.unet.layers_per_block", "1", "--model.unet.norm_groups", "8",
    "--diffusion.num_steps", "60", "--train.steps", "4", "--train.batch_size", "8",
    "--train.checkpoint_every", "2", "--sample.num_samples", "4", "--train.precision", "fp32",
]  # fmt: skip


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("messages") / "run"
    assert main(["train", "--preset", "digits", "--out", str(folder), "--quiet", *TINY]) == 0
    return folder


def test_resuming_a_finished_run_says_nothing_was_trained(run, capsys):
    capsys.readouterr()
    assert main(["train", "--resume", "--out", str(run), "--quiet", "--train.steps", "2"]) == 0
    out = capsys.readouterr().out
    assert "nothing to train: the run is at step 4, train.steps is 2" in out
    assert "its outputs were written before" in out


def test_a_checkpoint_pruned_while_read_says_so(run, tmp_path, monkeypatch, capsys):
    copy = tmp_path / "step-0000004"
    shutil.copytree(run / "checkpoints" / "step-0000004", copy)
    real = checkpoints.load_weights_file

    def pruned_meanwhile(module, path, described_by):
        shutil.rmtree(copy)  # what keep_checkpoints does to an old checkpoint
        return real(module, path, described_by)

    monkeypatch.setattr(checkpoints, "load_weights_file", pruned_meanwhile)
    assert main(["sample", str(copy), "--quiet", "--out", str(tmp_path / "s.png")]) == 2
    error = capsys.readouterr().err
    assert "was removed while it was read" in error and "keep_checkpoints" in error


def test_an_existing_output_names_the_flag_not_a_python_argument(run, tmp_path, capsys):
    out = tmp_path / "s.png"
    out.write_bytes(b"mine")
    assert main(["sample", str(run), "--quiet", "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert "already exists; refusing to overwrite it (choose --out)" in error
    assert "overwrite=True" not in error and out.read_bytes() == b"mine"
