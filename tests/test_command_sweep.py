"""Every command that draws from or reads a trained run (sample, restore, inpaint, edit, eval,
plot, export-diffusers), fed generated flag values (hypothesis): a result, or a one-line error with
exit code 2 (argparse's usage error, or ``ddpmkit CMD: error: …``), within a time bound; never a
traceback, never a hang (issue 29, class 6)."""

from __future__ import annotations

import contextlib
import io
import signal

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from ddpmkit.cli import main

TINY = [
    "--model.unet.base_channels", "16", "--model.unet.channel_mults", "1,2",
    "--model.unet.layers_per_block", "1", "--model.unet.norm_groups", "8",
    "--diffusion.num_steps", "40", "--train.steps", "2", "--train.batch_size", "8",
    "--train.checkpoint_every", "2", "--sample.num_samples", "2", "--train.precision", "fp32",
]  # fmt: skip
VALUES = ["0", "-1", "1", "2", "3", "1000000000000", "nan", "inf", "-inf", "", "x", "0.5",
          "1e300", "-0.5", "auto", "none", "ddim", "true"]  # fmt: skip
FLAGS = {
    "sample": ["--num_samples", "--batch_size", "--steps", "--seed", "--sampler", "--eta",
               "--guidance", "--classifier_scale", "--timesteps", "--grid", "--rho",
               "--dynamic_threshold", "--precision", "--label", "--churn", "--autoguidance"],
    "restore": ["--steps", "--num_samples", "--scale", "--blur_sigma", "--noise_std",
                "--step_size", "--seed", "--method"],
    "inpaint": ["--steps", "--num_samples", "--jump_length", "--resamplings", "--seed",
                "--method"],
    "edit": ["--strength", "--steps", "--num_samples", "--sampler", "--seed"],
    "eval": ["--num_samples", "--batch_size", "--num_levels", "--split", "--nll", "--seed"],
    "plot": ["--num_items", "--num_columns", "--seed"],
    "export-diffusers": ["--weights", "--no_card"],
}  # fmt: skip
SECONDS = 30  # every generated call ends (result or error) well within this on 2 cores
# (the values are small or absurd: a valid but long job, 10⁵ restorations, is not a failure)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sweep")
    assert main(["train", "--preset", "digits", "--out", str(folder / "run"), "--quiet",
                 *TINY]) == 0  # fmt: skip
    Image.fromarray(np.full((8, 8), 128, np.uint8)).save(folder / "image.png")
    mask = np.zeros((8, 8), np.uint8)
    mask[:, :4] = 255
    Image.fromarray(mask).save(folder / "mask.png")
    return folder


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang(f"a generated call ran for more than {SECONDS} s")


def _command(name: str, folder, flags: list[str], out: str) -> list[str]:
    run = str(folder / "run")
    if name == "sample":
        return ["sample", run, "--quiet", "--out", f"{out}.png", *flags]
    if name == "restore":
        return ["restore", run, "--task", "deblur", "--image", str(folder / "image.png"),
                "--quiet", "--out", f"{out}.png", *flags]  # fmt: skip
    if name == "inpaint":
        return ["inpaint", run, "--image", str(folder / "image.png"), "--mask",
                str(folder / "mask.png"), "--quiet", "--out", f"{out}.png", *flags]  # fmt: skip
    if name == "edit":
        return ["edit", run, "--image", str(folder / "image.png"), "--quiet",
                "--out", f"{out}.png", *flags]  # fmt: skip
    if name == "plot":
        return ["plot", run, "--out", out, *flags]
    if name == "export-diffusers":  # a U-Net without patches: this run exports
        flags = [flag.partition("=")[0] if flag.startswith("--no_card") else flag for flag in flags]
        return ["export-diffusers", run, out, *flags]
    return ["eval", run, "--quiet", "--out", f"{out}.json", *flags]


@pytest.mark.parametrize("name", sorted(FLAGS))
def test_generated_flags_give_a_result_or_a_one_line_error(name, inputs, tmp_path):
    counter = iter(range(10**6))
    codes: list[int] = []

    @settings(max_examples=30, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
    @given(st.lists(st.tuples(st.sampled_from(FLAGS[name]), st.sampled_from(VALUES)),
                    min_size=1, max_size=3))  # fmt: skip
    def check(pairs):
        flags = [f"{flag}={value}" for flag, value in pairs]
        command = _command(name, inputs, flags, str(tmp_path / f"out{next(counter)}"))
        error = io.StringIO()
        previous = signal.signal(signal.SIGALRM, _alarm)
        signal.alarm(SECONDS)
        try:
            with contextlib.redirect_stderr(error), contextlib.redirect_stdout(io.StringIO()):
                try:
                    code = main(command)
                except SystemExit as stop:  # argparse's usage error
                    code = stop.code if isinstance(stop.code, int) else 2
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, previous)
        text = error.getvalue()
        codes.append(code)
        assert code in (0, 2), (command, code, text[-1500:])
        assert "Traceback" not in text, (command, text[-1500:])
        if code == 2:
            last = [line for line in text.splitlines() if line.strip()][-1]
            assert last.startswith(f"ddpmkit {name}: error: "), (command, text[-1500:])

    check()
    assert 0 in codes and 2 in codes  # the values reached both the work and the validators
