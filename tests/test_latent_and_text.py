"""Latent diffusion and text conditioning through the pipeline: the autoencoder's training and
latent scaling, a latent run (its own copy of the autoencoder, decoded samples, resume), captions
made from the labels, prompts, and classifier-free guidance on text."""

import dataclasses
import json
import warnings

import pytest
import torch

from ddpmkit import PRESETS, RunConfig, Trainer, load_data
from ddpmkit.cli.main import main
from ddpmkit.config.autoencoder import AutoencoderRunConfig
from ddpmkit.config.parsing import from_dict, merge
from ddpmkit.config.presets import DIGIT_CAPTIONS
from ddpmkit.core.randomness import BatchShard
from ddpmkit.data import stack_items
from ddpmkit.generation.sampling import generate
from ddpmkit.pipeline.restoration import restore
from ddpmkit.storage.autoencoder_folders import RUN_AUTOENCODER, load_autoencoder
from ddpmkit.storage.model import load_model
from ddpmkit.training.autoencoder import train_autoencoder
from ddpmkit.training.latents import raw_latents

TINY_AE = {"base_channels": 8, "channel_mults": [1, 2], "norm_groups": 4, "latent_channels": 2}
TINY_UNET = {"base_channels": 8, "norm_groups": 4, "channel_mults": [1, 2]}
TINY_SAMPLE = {
    "num_samples": 6,
    "batch_size": 6,
    "sampler": "ddim",
    "steps": 4,
    "precision": "fp32",
}


def tiny_run(steps=4, **model):
    values = merge(
        PRESETS["digits"],
        {
            "model": {"unet": TINY_UNET} | model,
            "train": {"steps": steps, "batch_size": 16, "checkpoint_every": steps},
            "sample": TINY_SAMPLE,
        },
    )
    values["train"]["precision"] = "fp32"
    return from_dict(RunConfig, values)


@pytest.fixture(scope="module")
def autoencoder_folder(tmp_path_factory):
    config = from_dict(
        AutoencoderRunConfig,
        {
            "data": {"source": "digits"},
            "autoencoder": TINY_AE,
            "train": {"steps": 20, "batch_size": 32},
        },
    )
    folder = tmp_path_factory.mktemp("ae") / "ae"
    report = train_autoencoder(config, folder)
    return folder, report


def test_the_autoencoder_folder_holds_weights_scaling_and_a_report(autoencoder_folder):
    folder, report = autoencoder_folder
    assert {p.name for p in folder.iterdir()} >= {
        "config.json", "diffusion_pytorch_model.safetensors", "reconstructions.png", "report.json",
    }  # fmt: skip
    assert json.loads((folder / "config.json").read_text())["_class_name"] == "AutoencoderKL"
    assert report.latent_shape == (2, 4, 4)
    model = load_autoencoder(folder)
    assert model.config.scaling_factor == pytest.approx(report.scaling_factor)
    images = stack_items(load_data(from_dict(RunConfig, {}).data, "train").dataset)[0]
    scaled = raw_latents(model, images) * model.config.scaling_factor
    assert float(scaled.std()) == pytest.approx(1.0, rel=1e-4)  # 1/std of the training latents
    assert report.psnr > 0


def test_train_autoencoder_refuses_a_non_empty_folder(autoencoder_folder):
    folder, _ = autoencoder_folder
    with pytest.raises(FileExistsError, match=str(folder)):
        train_autoencoder(AutoencoderRunConfig(), folder)


def test_a_latent_run_keeps_its_autoencoder_and_samples_decoded_images(
    autoencoder_folder, tmp_path
):
    folder, _ = autoencoder_folder
    config = tiny_run(autoencoder=str(folder), unet=TINY_UNET | {"sample_size": 4})
    trainer = Trainer(config, tmp_path / "run")
    assert trainer.config.model.sample_shape == (2, 4, 4)
    assert trainer.config.sample.clip_x0 is False  # latents are not in [-1, 1]
    trainer.fit()
    assert (tmp_path / "run" / RUN_AUTOENCODER / "config.json").is_file()
    model = load_model(tmp_path / "run")
    assert model.shape == (2, 4, 4)
    images = generate(model).samples
    assert images.shape == (6, 1, 8, 8)
    # every sampler runs on the latents unchanged; the pipeline only decodes at the end
    latents = generate(dataclasses.replace(model, autoencoder=None)).samples
    assert latents.shape == (6, 2, 4, 4)
    with torch.no_grad():
        decoded = model.autoencoder.images(latents).clamp(-1, 1)
    torch.testing.assert_close(images, decoded, rtol=0, atol=1e-5)
    assert main(["eval", str(tmp_path / "run"), "--nll", "vlb", "--num_samples", "2"]) == 2
    with pytest.raises(ValueError, match="latent model"):
        restore(model, images[0], "inpaint", mask=torch.ones(1, 8, 8))
    resumed = Trainer(dataclasses.replace(config, train=dataclasses.replace(config.train, steps=6)),
                      tmp_path / "run", resume=True)  # fmt: skip
    assert resumed.step == 4
    resumed.fit()
    assert resumed.step == 6


@pytest.mark.slow
def test_eval_measures_a_latent_models_density_of_latents(autoencoder_folder, tmp_path):
    """The ODE likelihood of the encoded held-out images (≈40 s: RK45 on an untrained net)."""
    folder, _ = autoencoder_folder
    config = tiny_run(autoencoder=str(folder), unet=TINY_UNET | {"sample_size": 4})
    Trainer(config, tmp_path / "run").fit()
    assert main(["eval", str(tmp_path / "run"), "--nll", "ode", "--num_samples", "2",
                 "--batch_size", "2", "--quiet"]) == 0  # fmt: skip
    report = json.loads(next((tmp_path / "run" / "eval").glob("*-ode.json")).read_text())
    assert report["bits_per_dim"] == report["bits_per_dim"]  # finite: no NaN


@pytest.mark.parametrize(
    ("change", "message"),
    [({"data": {"hflip": True}}, "data.hflip"), ({"train": {"eval_every": 2}}, "eval_every")],
)
def test_latent_runs_refuse_options_that_need_pixels(autoencoder_folder, tmp_path, change, message):
    folder, _ = autoencoder_folder
    config = tiny_run(autoencoder=str(folder), unet=TINY_UNET | {"sample_size": 4})
    values = merge(dataclasses.asdict(config), change)
    with pytest.raises(ValueError, match=message):
        Trainer(from_dict(RunConfig, values), tmp_path / "run")


def text_run(tmp_path, steps=4, dropout=0.25):
    config = tiny_run(
        steps,
        text_conditional=True,
        label_dropout=dropout,
        captions=DIGIT_CAPTIONS,
        unet=TINY_UNET | {"attention_resolutions": [4]},
        text={"width": 16, "heads": 2, "layers": 1},
    )
    return Trainer(config, tmp_path / "text")


def test_a_text_run_learns_the_vocabulary_of_its_captions(tmp_path):
    trainer = text_run(tmp_path)
    model = trainer.config.model
    assert model.class_names[7] == "seven"
    assert {"handwritten", "seven", "digit", "7"} <= set(model.text.vocabulary)
    assert trainer.config.model.unet.cross_attention_dim == 16
    captions = trainer.sampling_model.captions
    assert captions.caption(7, 0) == "a handwritten seven"
    assert captions.caption(7, 1) == "the digit 7"
    torch.testing.assert_close(
        captions.tokens(torch.tensor([7])), captions.tokenize(["a handwritten seven"])
    )


def test_training_captions_use_every_template_and_drop_to_the_empty_prompt(tmp_path):
    """Each image gets its class's caption with a uniformly drawn template, replaced by the
    all-padding ∅ with probability label_dropout (binomial tolerance: 5 standard deviations)."""
    trainer = text_run(tmp_path, dropout=0.25)
    captions = trainer.sampling_model.captions
    n = 4000
    labels = torch.arange(n) % 10
    generator = torch.Generator().manual_seed(0)
    tokens = trainer._class_labels(labels, BatchShard(generator, slice(0, n), n, []))
    dropped = (tokens == 0).all(dim=1)
    assert abs(float(dropped.float().mean()) - 0.25) < 5 * (0.25 * 0.75 / n) ** 0.5
    kept = ~dropped
    table = captions.table[labels[kept]]  # (B, M, L): the class's captions
    which = (table == tokens[kept][:, None]).all(dim=2)
    assert which.sum(dim=1).eq(1).all()  # every kept row is exactly one of its captions
    shares = which.float().mean(dim=0)
    count = int(kept.sum())
    assert (shares - 1 / len(DIGIT_CAPTIONS)).abs().max() < 5 * (0.25 * 0.75 / count) ** 0.5


def test_prompts_and_text_guidance_sample(tmp_path):
    trainer = text_run(tmp_path)
    trainer.fit()
    model = load_model(tmp_path / "text")
    sample = dataclasses.replace(model.config.sample, prompt="the digit 3", guidance=3.0)
    result = generate(model, sample)
    assert result.samples.shape == (6, 1, 8, 8)
    unguided = generate(model, dataclasses.replace(sample, guidance=1.0)).samples
    assert not torch.equal(unguided, result.samples)  # ∅'s pass pushes the samples away
    seven = generate(model, dataclasses.replace(sample, prompt="the digit 7")).samples
    assert not torch.equal(seven, result.samples)  # the prompt reaches the network
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # known words: no warning
        generate(model, dataclasses.replace(sample, num_samples=1))
    with pytest.warns(UserWarning, match=r"'purple', 'zebra' never appeared in the captions .*"
                      r"its words are: .*digit"):  # fmt: skip
        generate(model, dataclasses.replace(sample, prompt="a purple zebra digit", num_samples=1))
    exported = tmp_path / "exported"
    assert main(["export-diffusers", str(tmp_path / "text"), str(exported)]) == 2
    assert not exported.exists()  # no DDPMPipeline form: refused before writing


def test_a_prompt_needs_a_text_model(tmp_path):
    trainer = Trainer(tiny_run(), tmp_path / "plain")
    trainer.fit()
    model = load_model(tmp_path / "plain")
    with pytest.raises(ValueError, match="text-conditional"):
        generate(model, dataclasses.replace(model.config.sample, prompt="a seven"))


def test_the_cli_trains_an_autoencoder_a_latent_text_model_and_samples_a_prompt(tmp_path, capsys):
    ae = tmp_path / "ae"
    flags = ["--autoencoder.base_channels", "8", "--autoencoder.norm_groups", "4",
             "--autoencoder.channel_mults", "1,2", "--autoencoder.latent_channels", "2"]  # fmt: skip
    assert (
        main(["train-autoencoder", "--out", str(ae), "--train.steps", "3", "--quiet", *flags]) == 0
    )
    assert "PSNR" in capsys.readouterr().out
    run = tmp_path / "run"
    assert main([
        "train", "--preset", "digits32-text", "--data.image_size", "8", "--autoencoder", str(ae),
        "--out", str(run), "--quiet", "--train.steps", "2", "--train.batch_size", "8",
        "--model.unet.sample_size", "4", "--model.unet.base_channels", "8",
        "--model.unet.norm_groups", "4", "--model.unet.attention_resolutions", "2",
        "--sample.num_samples", "2", "--sample.steps", "2", "--train.precision", "fp32",
    ]) == 0  # fmt: skip
    out = tmp_path / "seven.png"
    assert main([
        "sample", str(run), "--prompt", "a handwritten seven", "--out", str(out), "--quiet",
        "--num_samples", "2", "--steps", "2",
    ]) == 0  # fmt: skip
    assert out.is_file()
