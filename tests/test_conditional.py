"""Class-conditional runs: label dropout, labels and guidance at sampling, noisy classifiers on disk."""

import dataclasses

import pytest
import torch
from conftest import tiny_digits_config

from ddpmkit import (
    ClassifierFreeGuidance,
    ClassifierGuidance,
    DiffusionConfig,
    ModelConfig,
    SampleConfig,
    Trainer,
)
from ddpmkit.cli import main
from ddpmkit.config.builders import build_schedule, class_labels_of
from ddpmkit.generation.conditioning import Conditioning, sample_labels
from ddpmkit.generation.sampling import guided_denoiser
from ddpmkit.storage.classifier_folders import build_classifier, load_classifier, save_classifier

TINY = [
    "--model.unet.base_channels", "16", "--model.unet.channel_mults", "1,2",
    "--model.unet.layers_per_block", "1", "--model.unet.norm_groups", "8",
    "--diffusion.num_steps", "60", "--train.steps", "3", "--train.batch_size", "8",
    "--sample.num_samples", "4", "--train.precision", "fp32",
]  # fmt: skip


def _conditional(tmp_path, dropout=0.25):
    config = tiny_digits_config(steps=2)
    model = dataclasses.replace(config.model, class_conditional=True, label_dropout=dropout)
    return Trainer(dataclasses.replace(config, model=model), tmp_path / "run")


def test_label_dropout_adds_the_null_class_and_drops_labels_at_its_rate(tmp_path):
    trainer = _conditional(tmp_path)
    assert trainer.config.model.unet.num_classes == 11
    assert class_labels_of(trainer.config.model) == (10, 10)
    labels = torch.arange(20_000) % 10
    dropped = trainer._class_labels(labels, trainer.generator)
    share = (dropped == 10).double().mean().item()
    assert abs(share - 0.25) < 4 * (0.25 * 0.75 / 20_000) ** 0.5
    assert torch.equal(dropped[dropped != 10], labels[dropped != 10])
    plain = _conditional(tmp_path / "plain", dropout=0.0)
    assert class_labels_of(plain.config.model) == (10, None)
    assert torch.equal(plain._class_labels(labels, plain.generator), labels)


def test_label_dropout_needs_a_class_conditional_model():
    with pytest.raises(ValueError, match="class_conditional"):
        ModelConfig(label_dropout=0.1)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        ModelConfig(class_conditional=True, label_dropout=1.0)


def test_sample_labels_are_fixed_or_cycle_through_the_classes():
    assert sample_labels(SampleConfig(num_samples=5), 3).tolist() == [0, 1, 2, 0, 1]
    assert sample_labels(SampleConfig(num_samples=3, label=2), 3).tolist() == [2, 2, 2]
    assert sample_labels(SampleConfig(), None) is None
    with pytest.raises(ValueError, match="class-conditional"):
        sample_labels(SampleConfig(label=1), None)
    with pytest.raises(ValueError, match="0 … 2"):
        sample_labels(SampleConfig(label=3), 3)


def test_guidance_wrappers_follow_the_sample_config():
    def denoiser(x, sigma, class_labels=None):
        return x

    unguided = guided_denoiser(denoiser, SampleConfig(), Conditioning(10, 10, True))
    assert unguided is denoiser
    cfg = guided_denoiser(denoiser, SampleConfig(guidance=3.0), Conditioning(10, 10, True))
    assert isinstance(cfg, ClassifierFreeGuidance) and cfg.null_label == 10
    with pytest.raises(ValueError, match="label_dropout"):
        guided_denoiser(denoiser, SampleConfig(guidance=3.0), Conditioning(10, None, True))
    classifier = guided_denoiser(
        denoiser, SampleConfig(classifier_scale=2.0), Conditioning(10, None, False, lambda x, s: x)
    )
    assert isinstance(classifier, ClassifierGuidance) and not classifier.conditional


def test_classifier_folders_round_trip_and_never_overwrite(tmp_path):
    torch.manual_seed(0)
    network, architecture = build_classifier((1, 8, 8), 10, base_channels=8)
    diffusion = DiffusionConfig(num_steps=60)
    folder = save_classifier(tmp_path / "clf", network, architecture, diffusion)
    loaded = load_classifier(folder)
    loaded, trained_under = loaded.network, loaded.schedule
    x, t = torch.randn(3, 1, 8, 8), torch.tensor([0.0, 10.0, 59.0])
    assert torch.equal(loaded(x, t), network.eval()(x, t))
    assert torch.equal(trained_under.betas, build_schedule(diffusion).betas)
    with pytest.raises(FileExistsError, match="clf"):
        save_classifier(folder, network, architecture, diffusion)
    with pytest.raises(FileNotFoundError, match="train-classifier"):
        load_classifier(tmp_path)
    mlp, kind = build_classifier((2,), 3)
    assert kind["kind"] == "mlp" and mlp(torch.randn(4, 2), torch.zeros(4)).shape == (4, 3)


def test_guided_sampling_and_classifier_training_from_the_command_line(tmp_path, capsys):
    run = tmp_path / "run"
    conditional = ["--model.class_conditional", "true", "--model.label_dropout", "0.2"]
    assert (
        main(["train", "--preset", "digits", "--out", str(run), "--quiet", *TINY, *conditional])
        == 0
    )
    out = tmp_path / "three.png"
    args = ["sample", str(run), "--label", "3", "--guidance", "3", "--num_samples", "4",
            "--steps", "5", "--sampler", "ddim", "--out", str(out), "--quiet"]  # fmt: skip
    assert main(args) == 0 and out.is_file()
    assert (
        main(["train-classifier", str(run), "--steps", "3", "--base_channels", "8", "--quiet"]) == 0
    )
    assert "held-out accuracy at t = 0" in capsys.readouterr().out
    args = ["sample", str(run), "--classifier", str(run / "classifier"), "--classifier_scale", "2",
            "--num_samples", "3", "--steps", "5", "--out", str(tmp_path / "g.png"), "--quiet"]  # fmt: skip
    assert main(args) == 0
    other = tmp_path / "other"
    assert main(["train", "--preset", "digits", "--out", str(other), "--quiet", *TINY,
                 "--diffusion.num_steps", "80"]) == 0  # fmt: skip
    args = ["sample", str(other), "--classifier", str(run / "classifier"), "--quiet",
            "--out", str(tmp_path / "x.png")]  # fmt: skip
    assert main(args) == 2
    assert "another noise schedule" in capsys.readouterr().err
    assert (
        main(["sample", str(other), "--label", "1", "--quiet", "--out", str(tmp_path / "y.png")])
        == 2
    )
    assert "class-conditional" in capsys.readouterr().err
