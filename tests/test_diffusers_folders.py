"""diffusers model folders in and out of ddpmkit, as files: no diffusers needed here.

A folder in the layout of the public ``google/ddpm-cifar10-32`` repository (random weights, a
small U-Net) is sampled, evaluated and restored from the CLI, imported to a checkpoint and
exported back; the parity with diffusers itself is in tests/test_diffusers_parity.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from ddpmkit import NoiseSchedule, UNet
from ddpmkit.cli import main
from ddpmkit.config.builders import build_schedule
from ddpmkit.networks.diffusers_compat import unet_config_from_diffusers
from ddpmkit.storage.diffusers_folders import diffusion_config_from_scheduler
from ddpmkit.storage.model import load_model

UNET = {
    "_class_name": "UNet2DModel",
    "_diffusers_version": "0.0.4",
    "act_fn": "silu",
    "attention_head_dim": None,
    "block_out_channels": [16, 32],
    "center_input_sample": False,
    "down_block_types": ["DownBlock2D", "AttnDownBlock2D"],
    "downsample_padding": 0,
    "flip_sin_to_cos": False,
    "freq_shift": 1,
    "in_channels": 3,
    "layers_per_block": 1,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-06,
    "norm_num_groups": 8,
    "out_channels": 3,
    "sample_size": 8,
    "time_embedding_type": "positional",
    "up_block_types": ["AttnUpBlock2D", "UpBlock2D"],
}
SCHEDULER = {  # google/ddpm-cifar10-32's scheduler_config.json, with T = 100 for speed
    "_class_name": "DDPMScheduler",
    "_diffusers_version": "0.1.1",
    "beta_end": 0.02,
    "beta_schedule": "linear",
    "beta_start": 0.0001,
    "clip_sample": True,
    "num_train_timesteps": 100,
    "trained_betas": None,
    "variance_type": "fixed_large",
}


def write_pipeline(root: Path, unet: dict | None = None, scheduler: dict | None = None) -> Path:
    """model_index.json + unet/ + scheduler/ with random weights, as on the hub."""
    unet, scheduler = unet or UNET, scheduler or SCHEDULER
    (root / "unet").mkdir(parents=True)
    (root / "scheduler").mkdir()
    index = {"_class_name": "DDPMPipeline", "scheduler": ["diffusers", "DDPMScheduler"],
             "unet": ["diffusers", "UNet2DModel"]}  # fmt: skip
    (root / "model_index.json").write_text(json.dumps(index))
    (root / "unet" / "config.json").write_text(json.dumps(unet))
    (root / "scheduler" / "scheduler_config.json").write_text(json.dumps(scheduler))
    torch.manual_seed(0)
    network = UNet(unet_config_from_diffusers(unet))
    save_file(network.state_dict(), root / "unet" / "diffusion_pytorch_model.safetensors")
    return root


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory) -> Path:
    return write_pipeline(tmp_path_factory.mktemp("hub") / "ddpm-cifar10-32")


def test_every_command_reads_a_diffusers_pipeline_folder(pipeline, tmp_path):
    fast = ["--sampler", "dpm++2m", "--steps", "5", "--num_samples", "3", "--quiet"]
    assert main(["sample", str(pipeline), *fast]) == 0
    grid = pipeline / "samples" / "ddpm-cifar10-32-seed0.png"
    assert grid.is_file() and Image.open(grid).mode == "RGB"
    images = np.random.default_rng(0).integers(0, 256, (4, 8, 8, 3), dtype=np.uint8)
    np.savez(tmp_path / "real.npz", x=images)
    report = tmp_path / "nll.json"
    args = ["eval", str(pipeline), "--data", str(tmp_path / "real.npz"), "--out", str(report)]
    assert main([*args, "--quiet"]) == 0
    assert json.loads(report.read_text())["num_samples"] == 4
    Image.fromarray(images[0]).save(tmp_path / "photo.png")
    panel = tmp_path / "sr.png"
    args = ["restore", str(pipeline), "--task", "super-resolution", "--image",
            str(tmp_path / "photo.png"), "--steps", "5", "--out", str(panel), "--quiet"]  # fmt: skip
    assert main(args) == 0 and panel.is_file()


def test_the_schedule_and_options_are_read_from_the_scheduler_config(pipeline):
    model = load_model(pipeline)
    expected = torch.linspace(1e-4, 0.02, 100, dtype=torch.float64)
    assert torch.allclose(model.schedule.betas, expected, rtol=1e-12, atol=0)
    assert model.config.sample.variance == "beta"  # fixed_large
    assert model.config.sample.clip_x0 and model.config.diffusion.parameterization == "eps"
    assert model.shape == (3, 8, 8)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"beta_schedule": "squaredcos_cap_v2"}, NoiseSchedule.cosine(100, 0.008).betas),
        ({"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012},
         torch.linspace(0.00085**0.5, 0.012**0.5, 100, dtype=torch.float64) ** 2),
        ({"beta_schedule": "sigmoid"},
         torch.sigmoid(torch.linspace(-6, 6, 100, dtype=torch.float64)) * (0.02 - 1e-4) + 1e-4),
        ({"trained_betas": [0.01] * 100}, torch.full((100,), 0.01, dtype=torch.float64)),
    ],
)  # fmt: skip
def test_each_beta_schedule_gives_diffusers_betas(changes, expected):
    diffusion, _ = diffusion_config_from_scheduler(SCHEDULER | changes, "scheduler_config.json")
    assert torch.allclose(build_schedule(diffusion).betas, expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"beta_schedule": "exponential"}, "beta_schedule = 'exponential' is not supported"),
        ({"variance_type": "learned"}, "variance_type = 'learned' is not supported"),
        ({"prediction_type": "flow"}, "prediction_type = 'flow' is not supported"),
        ({"rescale_betas_zero_snr": True}, "rescale_betas_zero_snr = True is not supported"),
        ({"clip_sample_range": 2.0}, "clip_sample_range = 2.0 is not supported"),
    ],
)
def test_unsupported_scheduler_settings_name_the_key(changes, message):
    with pytest.raises(ValueError, match=message):
        diffusion_config_from_scheduler(SCHEDULER | changes, "scheduler_config.json")


def test_folders_that_cannot_be_read_say_why(tmp_path, capsys):
    bin_only = write_pipeline(tmp_path / "bin")
    weights = bin_only / "unet" / "diffusion_pytorch_model.safetensors"
    weights.rename(weights.with_suffix(".bin"))
    no_scheduler = write_pipeline(tmp_path / "noscheduler")
    (no_scheduler / "scheduler" / "scheduler_config.json").unlink()
    latent = write_pipeline(tmp_path / "latent")
    index = json.loads((latent / "model_index.json").read_text())
    (latent / "model_index.json").write_text(json.dumps(index | {"vae": ["diffusers", "VQModel"]}))
    learned = SCHEDULER | {"variance_type": "learned_range"}  # but the U-Net outputs 3 channels
    mismatched = write_pipeline(tmp_path / "learned", scheduler=learned)
    cases = [(bin_only, "only safetensors are read"),
             (no_scheduler, "scheduler_config.json is missing"),
             (latent, "components ['vae'] are not read"),
             (mismatched, "does not fit the U-Net's 3 output")]  # fmt: skip
    for folder, message in cases:
        assert main(["sample", str(folder), "--quiet"]) == 2
        assert message in capsys.readouterr().err


def test_import_then_export_gives_the_same_files_and_samples(pipeline, tmp_path):
    checkpoint = tmp_path / "imported"
    assert main(["import-diffusers", str(pipeline), str(checkpoint)]) == 0
    fast = ["--sampler", "ddim", "--steps", "4", "--num_samples", "2", "--quiet"]
    assert main(["sample", str(checkpoint), *fast, "--out", str(tmp_path / "a.png")]) == 0
    assert main(["sample", str(pipeline), *fast, "--out", str(tmp_path / "b.png")]) == 0
    a, b = (np.load(tmp_path / f"{n}.npz")["samples"] for n in "ab")
    assert np.array_equal(a, b)
    exported = tmp_path / "exported"
    assert main(["export-diffusers", str(checkpoint), str(exported)]) == 0
    weights = "unet/diffusion_pytorch_model.safetensors"
    original, back = load_file(pipeline / weights), load_file(exported / weights)
    assert original.keys() == back.keys()
    assert all(torch.equal(original[k], back[k]) for k in original)  # bit for bit
    scheduler = json.loads((exported / "scheduler" / "scheduler_config.json").read_text())
    assert {k: scheduler[k] for k in ("beta_schedule", "num_train_timesteps", "variance_type")} == {
        "beta_schedule": "linear", "num_train_timesteps": 100, "variance_type": "fixed_large"}  # fmt: skip
    assert scheduler["beta_start"] == pytest.approx(1e-4) and scheduler[
        "beta_end"
    ] == pytest.approx(0.02)
    assert main(["export-diffusers", str(checkpoint), str(exported)]) == 2  # never overwritten


def test_a_loaded_model_remembers_its_source(pipeline, tmp_path):
    """The folder's format is decided once (ModelSource.find) and travels with the model: a
    diffusers folder writes into itself and has no ddpmkit training data; its imported copy is a
    ddpmkit checkpoint outside any run; a folder that is neither is refused by name."""
    from ddpmkit.storage.model import ModelSource

    source = ModelSource.find(pipeline)
    assert source.format == "diffusers" and source.run_step is None
    model = load_model(source, "cpu")
    assert model.source == ModelSource(pipeline, "diffusers")
    assert model.checkpoint == pipeline and model.outputs_folder == pipeline
    assert model.training_data is None
    imported = tmp_path / "imported"
    assert main(["import-diffusers", str(pipeline), str(imported)]) == 0
    copy = load_model(imported, "cpu")
    assert copy.source == ModelSource(imported, "ddpmkit") and copy.source.run_step is None
    assert copy.training_data == copy.config.data
    with pytest.raises(FileNotFoundError, match="neither a checkpoint nor a run folder"):
        ModelSource.find(tmp_path)


@pytest.mark.parametrize("process", ["ve", "subvp"])
def test_processes_other_than_vp_are_refused_for_export_by_name(process, tmp_path):
    """A VE or sub-VP model written as a β-schedule DDPMScheduler would be read back as VP."""
    import dataclasses

    from ddpmkit import RunConfig
    from ddpmkit.storage.diffusers_folders import export_refusal, write_pipeline_folder

    config = RunConfig()
    diffusion = dataclasses.replace(config.diffusion, process=process)
    config = dataclasses.replace(config, diffusion=diffusion)
    refusal = export_refusal(config)
    assert refusal is not None and f"diffusion.process {process!r}" in refusal
    with pytest.raises(ValueError, match=f"diffusion.process {process!r}"):
        write_pipeline_folder(config, torch.nn.Linear(1, 1), tmp_path / "out")
    assert not (tmp_path / "out").exists()
