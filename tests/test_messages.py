"""Messages that say what happened (issue 29, class 8)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

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


def test_configs_nested_too_deeply_are_one_line_errors(tmp_path):
    from ddpmkit.config.parsing import ConfigError, read_config_file
    from ddpmkit.storage.checkpoints import read_config

    deep = "[" * 100_000 + "]" * 100_000
    for name, text in (("deep.json", deep), ("deep.yaml", "a: " + "[" * 5000 + "]" * 5000)):
        (tmp_path / name).write_text(text)
        with pytest.raises(ConfigError, match=f"{name}: nested too deeply"):
            read_config_file(tmp_path / name)
    (tmp_path / "config.json").write_text(deep)
    with pytest.raises(ValueError, match=r"config\.json: not a readable config \(nested too"):
        read_config(tmp_path)


def test_offline_inception_weights_name_the_option(monkeypatch):
    import urllib.error

    import torch_fidelity.feature_extractor_inceptionv3 as inception

    from ddpmkit.evaluation.fidelity import inception_features

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(inception, "FeatureExtractorInceptionV3", offline)
    with pytest.raises(ValueError, match=r"cannot download the Inception weights .*name "
                       r"resolution.*; pass --inception_weights FILE"):  # fmt: skip
        inception_features([], 0, None, torch.device("cpu"))


def test_a_bad_samples_file_is_refused_before_the_reference_is_computed(run, tmp_path, monkeypatch):
    from ddpmkit.api import quality

    computed = []
    monkeypatch.setattr(quality, "_reference_features", lambda *a: computed.append(a))
    bad = tmp_path / "samples.npz"
    np.savez(bad, samples=np.zeros((4, 5), np.float32))  # vectors, not images
    from ddpmkit.api.model import load

    with pytest.raises(ValueError, match=r"samples\.npz: .*holds vectors \(4, 5\)"):
        load(run).quality(["fid"], "digits", samples=bad, num_samples=4)
    assert computed == []
