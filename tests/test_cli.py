"""The ``ddpmkit`` command as a user runs it: train, sample, presets, help, and its errors."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from ddpmkit.cli import build_parser, main

TINY = [
    "--model.unet.base_channels", "16", "--model.unet.channel_mults", "1,2",
    "--model.unet.layers_per_block", "1", "--model.unet.norm_groups", "8",
    "--diffusion.num_steps", "60", "--train.steps", "4", "--train.batch_size", "8",
    "--train.checkpoint_every", "2", "--sample.num_samples", "5", "--train.precision", "fp32",
]  # fmt: skip


def test_help_documents_every_option():
    text = build_parser()._subparsers._group_actions[0].choices["train"].format_help()
    for option in (
        "--train.ema_decay",
        "--model.unet.attention_resolutions",
        "--data.hflip",
        "--diffusion.parameterization",
        "--sample.variance",
        "--resume",
        "--preset",
    ):
        assert option in text
    assert "EMA decay" in text  # help comes from the field's comment


def test_train_then_sample(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--preset", "digits", "--out", str(run), "--quiet", *TINY]) == 0
    out = capsys.readouterr().out
    assert str(run / "samples" / "step-0000004.png") in out
    grid = Image.open(run / "samples" / "step-0000004.png")
    assert grid.mode == "L" and grid.width >= 64
    assert (
        main(
            [
                "sample",
                str(run),
                "--num_samples",
                "3",
                "--seed",
                "5",
                "--quiet",
                "--trajectory",
                str(tmp_path / "traj.npz"),
            ]
        )
        == 0
    )
    samples = np.load(run / "samples" / "step-0000004-seed5.npz")["samples"]
    assert samples.shape == (3, 1, 8, 8) and np.abs(samples).max() <= 1.0
    assert np.load(tmp_path / "traj.npz")["samples"].shape == (3, 61, 1, 8, 8)
    # The same command again would overwrite: refused, naming the file.
    assert main(["sample", str(run), "--num_samples", "3", "--seed", "5", "--quiet"]) == 2
    assert "step-0000004-seed5.png already exists" in capsys.readouterr().err
    # Outputs that could not be written are errors before any sampling, with nothing left behind.
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    x, y, z = (str(tmp_path / name) for name in ("x.npz", "y.png", "z.png"))
    bad_outputs = [
        (["--out", x], f"--out {x}: this output is written as .png"),
        (["--out", y, "--npz", y], f"--npz {y}: this output is written as .npz"),
        (["--out", z, "--trajectory", z[:-4] + ".npz"], "--trajectory and --npz both name"),
        (["--out", str(blocked / "w.png")], "cannot make its folder"),
    ]
    for flags, message in bad_outputs:
        assert main(["sample", str(run), "--num_samples", "2", "--quiet", *flags]) == 2
        assert message in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "run", "traj.npz"]


def test_resume_extends_training(tmp_path):
    run = tmp_path / "run"
    assert main(["train", "--preset", "digits", "--out", str(run), "--quiet", *TINY]) == 0
    assert main(["train", "--out", str(run), "--resume", "--quiet", "--train.steps", "6"]) == 0
    assert (run / "checkpoints" / "step-0000006").is_dir()


def test_toy2d_writes_a_scatter_plot(tmp_path):
    run = tmp_path / "toy"
    args = [
        "train",
        "--preset",
        "toy2d",
        "--out",
        str(run),
        "--quiet",
        "--train.steps",
        "3",
        "--diffusion.num_steps",
        "60",
        "--sample.num_samples",
        "50",
    ]
    assert main(args) == 0
    assert Image.open(run / "samples" / "step-0000003.png").mode == "RGB"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--train.bach_size", "3"], "unrecognized arguments: --train.bach_size"),
        (["train", "--preset", "imagenet"], "invalid choice: 'imagenet'"),
        (["train", "--train.step", "3"], "unrecognized arguments: --train.step 3"),  # no prefixes
        (["train", "--model.unet.base", "8"], "unrecognized arguments: --model.unet.base 8"),
    ],
)
def test_mistyped_options_are_errors(args, message, capsys):
    with pytest.raises(SystemExit):
        main(args)
    assert message in capsys.readouterr().err


def test_bad_values_and_files_are_named(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path / "r"), "--train.steps", "zero"]) == 2
    assert "train.steps: expected int, got 'zero'" in capsys.readouterr().err
    assert main(["sample", str(tmp_path / "nowhere")]) == 2
    assert "nowhere is neither a checkpoint nor a run folder" in capsys.readouterr().err


def test_console_script_runs():
    result = subprocess.run(
        [sys.executable, "-m", "ddpmkit", "presets"], capture_output=True, text=True
    )
    assert result.returncode == 0 and "digits" in result.stdout


def test_every_sampler_runs_from_the_command_line_on_a_trained_model(tmp_path):
    from ddpmkit.samplers import SAMPLERS

    run = tmp_path / "run"
    assert main(["train", "--preset", "digits", "--out", str(run), "--quiet", *TINY]) == 0
    for name in SAMPLERS:
        out = tmp_path / f"{name}.png"
        args = ["sample", str(run), "--sampler", name, "--steps", "6", "--num_samples", "4",
                "--quiet", "--out", str(out)]  # fmt: skip
        assert main(args) == 0, name
        samples = np.load(out.with_suffix(".npz"))["samples"]
        assert samples.shape == (4, 1, 8, 8) and np.isfinite(samples).all(), name
    assert main(["sample", str(run), "--sampler", "ddim", "--eta", "2", "--quiet",
                 "--out", str(tmp_path / "bad.png")]) == 2  # fmt: skip


def test_eval_reports_bits_per_dim_with_both_likelihoods(tmp_path, capsys):
    import json

    run = tmp_path / "run"
    assert main(["train", "--preset", "digits", "--out", str(run), "--quiet", *TINY]) == 0
    for method, count in (("vlb", 6), ("ode", 2)):
        args = ["eval", str(run), "--nll", method, "--num_samples", str(count), "--batch_size", "3",
                "--quiet"]  # fmt: skip
        assert main(args) == 0
        report = json.loads((run / "eval" / f"step-0000004-{method}.json").read_text())
        assert report["num_samples"] == count and len(report["per_sample"]) == count
        assert 0 < report["bits_per_dim"] < 20 and report["ci95"] >= 0 and report["nfe"] > 0
    assert len(report["per_sample"]) == 2
    vlb = json.loads((run / "eval" / "step-0000004-vlb.json").read_text())
    assert len(vlb["terms_bpd"]) == 60
    total = vlb["prior_bpd"] + sum(vlb["terms_bpd"])
    assert abs(total - vlb["bits_per_dim"]) < 1e-3 * total
    assert abs(vlb["rate_bpd"] + vlb["distortion_bpd"] - total) < 1e-9 * total
    assert vlb["distortion_bpd"] == vlb["terms_bpd"][0]
    assert (run / "eval" / "step-0000004-vlb.png").is_file()
    printed = capsys.readouterr().out
    assert "bits/dim (95% CI" in printed and "rate (L_T … L_1)" in printed
    ranges = [float(line.split()[-1]) for line in printed.splitlines() if "L_t, t =" in line]
    assert len(ranges) == 4 and abs(sum(ranges) - sum(vlb["terms_bpd"][1:])) < 1e-3
    assert (
        main(["eval", str(run), "--nll", "vlb", "--num_samples", "6", "--quiet"]) == 2
    )  # no overwrite


def test_hybrid_model_samples_and_evaluates_with_its_learned_variance(tmp_path, capsys):
    import json

    run = tmp_path / "run"
    hybrid = ["--diffusion.learned_variance", "true", "--diffusion.loss", "hybrid"]
    assert main(["train", "--preset", "digits", "--out", str(run), "--quiet", *TINY, *hybrid]) == 0
    assert main(["sample", str(run), "--num_samples", "3", "--steps", "10", "--quiet"]) == 0
    digits = np.load(run / "samples" / "step-0000004.npz")["samples"][:5]
    np.savez(tmp_path / "mine.npz", x=digits)
    reports = {}
    for variance in ("auto", "beta_tilde"):
        out = tmp_path / f"{variance}.json"
        args = ["eval", str(run), "--data", str(tmp_path / "mine.npz"), "--variance", variance,
                "--out", str(out), "--quiet"]  # fmt: skip
        assert main(args) == 0
        reports[variance] = json.loads(out.read_text())
    assert reports["auto"]["num_samples"] == 5
    assert reports["auto"]["bits_per_dim"] != reports["beta_tilde"]["bits_per_dim"]
    np.savez(tmp_path / "wide.npz", x=np.zeros((4, 1, 8, 9), np.float32))
    args = [
        "eval",
        str(run),
        "--data",
        str(tmp_path / "wide.npz"),
        "--out",
        str(tmp_path / "w.json"),
    ]
    assert main([*args, "--quiet"]) == 2
    assert "wide.npz" in capsys.readouterr().err
    assert main(["eval", str(run), "--data", str(tmp_path / "missing"), "--quiet"]) == 2


def test_a_diverging_run_stops_with_the_step_named(tmp_path, capsys):
    """The toy preset at lr 1e6 produced NaN from the first step and wrote NaN checkpoints."""
    run = tmp_path / "toy"
    args = ["train", "--preset", "toy2d", "--out", str(run), "--quiet", "--train.lr", "1e6",
            "--train.warmup_steps", "0", "--train.steps", "40", "--train.checkpoint_every", "20"]  # fmt: skip
    assert main(args) == 2
    error = capsys.readouterr().err
    assert "the loss or gradient is NaN/Inf, training stopped" in error
    assert "no checkpoint was written" in error
    assert not (run / "checkpoints").exists() or not any((run / "checkpoints").iterdir())


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--train.checkpoint_every", "0", "train.checkpoint_every must be >= 1, got 0"),
        ("--train.lr", "inf", "train.lr: must be a finite number, got inf"),
        ("--train.warmup_steps", "-1", "train.warmup_steps must be >= 0, got -1"),
        ("--train.grad_clip", "-1", "train.grad_clip must be >= 0 and finite"),
        ("--train.keep_checkpoints", "-2", "train.keep_checkpoints must be >= 0"),
    ],
)
def test_out_of_range_training_options_are_errors_before_a_run_folder(
    tmp_path, capsys, flag, value, message
):
    assert main(["train", "--out", str(tmp_path / "r"), flag, value]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["eval", "run", "--num_samples", "0"], "argument --num_samples: must be >= 1, got 0"),
        (["eval", "run", "--num_levels", "1"], "argument --num_levels: must be >= 2, got 1"),
        (["inpaint", "run", "--steps", "0"], "argument --steps: must be >= 1, got 0"),
    ],
)
def test_out_of_range_command_flags_are_errors(args, message, capsys):
    with pytest.raises(SystemExit):
        main(args)
    assert message in capsys.readouterr().err


def test_ctrl_c_says_how_to_continue_and_the_run_resumes(tmp_path, capsys, monkeypatch):
    """A KeyboardInterrupt traceback, and a folder neither --resume nor a new run accepted."""
    from ddpmkit.training.loop import Trainer

    fit = Trainer.fit

    def interrupted_fit(self, on_step=None, on_sampling=None):
        def stop_at_two(step, metrics):
            on_step(step, metrics)
            if step == 2:
                raise KeyboardInterrupt

        return fit(self, stop_at_two, on_sampling)

    run = tmp_path / "run"
    monkeypatch.setattr(Trainer, "fit", interrupted_fit)
    assert main(["train", "--preset", "digits", "--out", str(run), "--quiet", *TINY]) == 130
    error = capsys.readouterr().err
    assert "interrupted at step 2; no checkpoint yet" in error
    assert f"Continue with: ddpmkit train --resume --out {run}" in error
    monkeypatch.setattr(Trainer, "fit", fit)
    assert main(["train", "--resume", "--out", str(run), "--quiet"]) == 0
    assert (run / "samples" / "step-0000004.png").exists()


def test_tampered_checkpoints_are_named_errors(tmp_path, capsys):
    """A hand-edited config.json or a damaged weights file: one line naming it, no traceback."""
    run = tmp_path / "run"
    assert main(["train", "--preset", "digits", "--out", str(run), "--quiet", *TINY]) == 0
    capsys.readouterr()
    checkpoint = run / "checkpoints" / "step-0000004"
    config_path = checkpoint / "config.json"
    original = json.loads(config_path.read_text())

    def sample_with(edit) -> str:
        config = json.loads(json.dumps(original))
        edit(config)
        config_path.write_text(json.dumps(config))
        assert main(["sample", str(checkpoint), "--num_samples", "2", "--quiet"]) == 2
        return capsys.readouterr().err

    wider = sample_with(lambda c: c["model"]["unet"].update(base_channels=64))
    assert "the weights do not fit the network its config.json describes" in wider
    bigger = sample_with(lambda c: c["model"].update(sample_shape=[1, 16, 16]))
    assert "model.sample_shape (1, 16, 16) does not fit the network (in_channels 1" in bigger
    config_path.write_text(json.dumps(original))
    weights = checkpoint / "ema.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    assert main(["sample", str(checkpoint), "--num_samples", "2", "--quiet"]) == 2
    assert f"{weights} is not a readable safetensors file" in capsys.readouterr().err


def _noise_folder(root, count: int = 12):
    root.mkdir()
    rng = np.random.default_rng(0)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(root / f"n{i:02d}.png")
    return root


def test_a_damaged_image_is_named_before_the_run_or_left_out_with_a_warning(tmp_path, capsys):
    """A JPEG cut at 90% has an intact header: only decoding finds it, so every file is
    decoded at start-up (JPEGs at reduced scale), before a run folder is made."""
    folder = _noise_folder(tmp_path / "images")
    noise = np.random.default_rng(1).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(folder / "cut.jpg", quality=90)
    data = (folder / "cut.jpg").read_bytes()
    (folder / "cut.jpg").write_bytes(data[: int(len(data) * 0.9)])
    flags = ["train", "--preset", "digits", "--data.source", "folder", "--data.path", str(folder),
             "--data.image_size", "8", "--data.channels", "1", "--quiet", *TINY]  # fmt: skip
    assert main([*flags, "--out", str(tmp_path / "refused")]) == 2
    error = capsys.readouterr().err
    assert "cut.jpg: image file is truncated" in error and "--data.skip_bad_files" in error
    assert not (tmp_path / "refused").exists()
    run = tmp_path / "skipped"
    assert main([*flags, "--out", str(run), "--data.skip_bad_files", "true"]) == 0
    error = capsys.readouterr().err
    assert "ddpmkit train: warning: left out 1 unreadable image file(s)" in error
    assert "cut.jpg" in error and (run / "checkpoints" / "step-0000004").is_dir()


def test_sample_formats_for_evaluation_tools(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--preset", "digits", "--out", str(run), "--quiet", *TINY]) == 0
    flags = ["sample", str(run), "--num_samples", "5", "--steps", "3", "--sampler", "ddim",
             "--quiet"]  # fmt: skip
    assert main([*flags, "--format", "png-folder", "--out", str(tmp_path / "a.png")]) == 0
    files = sorted((tmp_path / "a").iterdir())
    assert [f.name for f in files] == [f"{i:06d}.png" for i in range(5)]
    first = np.asarray(Image.open(files[0]))
    samples = np.load(tmp_path / "a.npz")["samples"]
    assert first.shape == (8, 8)  # native size, no upscaling
    assert np.array_equal(first, np.round((samples[0, 0] + 1) * 127.5).clip(0, 255))
    assert main([*flags, "--format", "npz-uint8", "--out", str(tmp_path / "b.png")]) == 0
    arr = np.load(tmp_path / "b-uint8.npz")["arr_0"]
    assert arr.dtype == np.uint8 and arr.shape == (5, 8, 8, 1)
    assert main([*flags, "--format", "png-folder", "--out", str(tmp_path / "a.png")]) == 2
    assert "already exists" in capsys.readouterr().err
