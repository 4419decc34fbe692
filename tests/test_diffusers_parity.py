"""Models converted between diffusers and ddpmkit compute the same thing, both ways.

diffusers (a test dependency) builds and saves a random ``DDPMPipeline``; ddpmkit reads the folder
and must give the U-Net's outputs and the schedule's ᾱ_t to float32 rounding (1e-5, 1e-6), and the
same deterministic DDIM samples from the same x_T. A ddpmkit run exported to diffusers loads with
``DDPMPipeline.from_pretrained`` and samples there.
"""

from __future__ import annotations

import pytest
import torch

from ddpmkit import sample
from ddpmkit.cli import main
from ddpmkit.storage.model import load_model

diffusers = pytest.importorskip("diffusers")
pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::DeprecationWarning")

UNET = dict(sample_size=8, in_channels=3, out_channels=3, layers_per_block=1,
            block_out_channels=(16, 32), down_block_types=("DownBlock2D", "AttnDownBlock2D"),
            up_block_types=("AttnUpBlock2D", "UpBlock2D"), norm_num_groups=8, flip_sin_to_cos=False,
            freq_shift=1, downsample_padding=0, attention_head_dim=None)  # fmt: skip


def save_pipeline(folder, scheduler: dict, out_channels: int = 3):
    torch.manual_seed(0)
    unet = diffusers.UNet2DModel(**(UNET | {"out_channels": out_channels})).eval()
    pipeline = diffusers.DDPMPipeline(unet=unet, scheduler=diffusers.DDPMScheduler(**scheduler))
    pipeline.save_pretrained(folder, safe_serialization=True)
    return pipeline


def network_gap(ours, theirs, channels: int = 3) -> float:
    x = torch.randn(2, channels, 8, 8, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([3, 71])
    with torch.no_grad():
        return float((ours(x, t) - theirs(x, t).sample).abs().max())


@pytest.mark.parametrize(
    "scheduler",
    [
        {"num_train_timesteps": 100, "beta_schedule": "linear", "variance_type": "fixed_small"},
        {"num_train_timesteps": 100, "beta_schedule": "squaredcos_cap_v2",
         "prediction_type": "v_prediction", "variance_type": "learned_range"},
        {"num_train_timesteps": 50, "beta_schedule": "scaled_linear", "beta_start": 0.00085,
         "beta_end": 0.012, "prediction_type": "sample", "clip_sample": False},
    ],
)  # fmt: skip
def test_a_diffusers_pipeline_reads_into_the_same_model(tmp_path, scheduler):
    learned = scheduler.get("variance_type") == "learned_range"
    pipeline = save_pipeline(tmp_path / "pipe", scheduler, out_channels=6 if learned else 3)
    model = load_model(tmp_path / "pipe")
    assert network_gap(model.network, pipeline.unet) < 1e-5
    theirs = pipeline.scheduler.alphas_cumprod.double()
    assert torch.allclose(model.schedule.alpha_bar, theirs, rtol=1e-6, atol=1e-7)
    assert model.config.diffusion.learned_variance == learned


def test_deterministic_samples_agree_with_diffusers_ddim(tmp_path):
    config = {"num_train_timesteps": 100, "beta_schedule": "linear", "clip_sample": False}
    pipeline = save_pipeline(tmp_path / "pipe", config)
    model = load_model(tmp_path / "pipe")
    noise = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    scheduler = diffusers.DDIMScheduler.from_config(
        pipeline.scheduler.config, timestep_spacing="trailing"
    )
    scheduler.set_timesteps(5)
    x = noise
    with torch.no_grad():
        for t in scheduler.timesteps:
            x = scheduler.step(pipeline.unet(x, t).sample, t, x, eta=0.0).prev_sample
        ours = sample("ddim", model.denoiser, model.schedule, noise.double(), 5, grid="trailing")
    assert float((ours.samples.float() - x).abs().max()) < 1e-4


def test_a_ddpmkit_run_exports_to_a_pipeline_diffusers_samples(tmp_path):
    run = tmp_path / "run"
    tiny = ["--model.unet.base_channels", "16", "--model.unet.channel_mults", "1,2",
            "--model.unet.layers_per_block", "1", "--model.unet.norm_groups", "8",
            "--diffusion.num_steps", "40", "--train.steps", "2", "--train.batch_size", "8",
            "--sample.num_samples", "2", "--quiet"]  # fmt: skip
    assert main(["train", "--preset", "digits", "--out", str(run), *tiny]) == 0
    assert main(["export-diffusers", str(run), str(tmp_path / "exported")]) == 0
    pipeline = diffusers.DDPMPipeline.from_pretrained(tmp_path / "exported")
    model = load_model(run)
    assert network_gap(model.network, pipeline.unet, channels=1) < 1e-5
    theirs = pipeline.scheduler.alphas_cumprod.double()
    assert torch.allclose(model.schedule.alpha_bar, theirs, rtol=1e-6, atol=1e-7)
    images = pipeline(batch_size=2, num_inference_steps=40, output_type="np",
                      generator=torch.Generator().manual_seed(0)).images  # fmt: skip
    assert images.shape == (2, 8, 8, 1) and images.min() >= 0.0 and images.max() <= 1.0
    # and back: the re-imported folder holds the exported weights, bit for bit
    assert main(["import-diffusers", str(tmp_path / "exported"), str(tmp_path / "back")]) == 0
    back = load_model(tmp_path / "back")
    for (name, a), b in zip(
        model.network.state_dict().items(), back.network.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
