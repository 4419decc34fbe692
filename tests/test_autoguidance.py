"""Autoguidance (Karras et al. 2024): exact on Gaussians, neutral at w = 1, and its default guide.

For x_0 ~ N(0, s²I) the exact denoiser is D(x; σ) = s²/(s² + σ²)·x, so the probability-flow ODE
dx/dσ = (x - D_w(x; σ))/σ of the guided D_w = D_0 + w(D_1 - D_0) is linear:
d log|x|/dσ = w·σ/(s_1² + σ²) + (1 - w)·σ/(s_0² + σ²), and x(0) = x(σ_T)·√(g(0)/g(σ_T)) with
g(σ) = (s_1² + σ²)^w (s_0² + σ²)^(1-w): samples end with standard deviation ≈ s_1^w s_0^(1-w).
"""

import dataclasses
import math

import numpy as np
import pytest
import torch
from test_cli import TINY

from ddpmkit import AutoGuidance, GaussianDenoiser, NoiseSchedule, sample
from ddpmkit.cli import main
from ddpmkit.storage.checkpoints import read_config
from ddpmkit.storage.guides import guide_checkpoint, load_guide
from ddpmkit.storage.model import ModelSource, load_model

SCHEDULE = NoiseSchedule.linear(1000)
DIM = 3


def gaussian(std: float) -> GaussianDenoiser:
    return GaussianDenoiser(torch.zeros(DIM), std**2 * torch.eye(DIM))


def ode_gain(s1: float, s0: float, w: float) -> float:
    """x(0)/x_T of the guided probability-flow ODE from VP noise x_T (VE x = x_T·√(1 + σ_T²))."""
    sigma_t = float(SCHEDULE.sigmas[-1])

    def log_g(sigma: float) -> float:
        return w * math.log(s1**2 + sigma**2) + (1 - w) * math.log(s0**2 + sigma**2)

    return math.sqrt(1 + sigma_t**2) * math.exp(0.5 * (log_g(0.0) - log_g(sigma_t)))


@pytest.mark.parametrize("weight", [0.0, 1.0, 2.0, 3.0])
def test_the_guided_ode_scales_gaussian_noise_by_its_closed_form(weight):
    """The ODE is linear, so every sample is its noise times one gain: no Monte Carlo error."""
    s1, s0 = 0.5, 1.0
    guided = AutoGuidance(gaussian(s1), gaussian(s0), weight)
    noise = torch.randn(16, DIM, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x = sample("ode-heun", guided, SCHEDULE, noise, 200, grid="karras").samples
    gain = ode_gain(s1, s0, weight)
    assert gain == pytest.approx(s1**weight * s0 ** (1 - weight), rel=1e-3)
    torch.testing.assert_close(x, gain * noise, rtol=5e-3, atol=0.0)


def test_weight_one_never_calls_the_guide_and_reproduces_plain_sampling():
    def refuse(*_args, **_kwargs):
        raise AssertionError("the guide must not run at w = 1")

    noise = torch.randn(8, DIM, generator=torch.Generator().manual_seed(1))
    plain = sample("ancestral", gaussian(0.5), SCHEDULE, noise, 20, generator=seeded(2)).samples
    neutral = AutoGuidance(gaussian(0.5), refuse, 1.0)
    guided = sample("ancestral", neutral, SCHEDULE, noise, 20, generator=seeded(2)).samples
    assert torch.equal(plain, guided)


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_the_default_guide_is_the_checkpoint_nearest_half_the_steps(tmp_path):
    for step in (2, 4, 6, 8):
        (tmp_path / "checkpoints" / f"step-{step:07d}").mkdir(parents=True)
    assert guide_checkpoint(tmp_path, 8).name == "step-0000004"
    assert guide_checkpoint(tmp_path, 6).name == "step-0000002"  # a tie goes to the earlier
    assert guide_checkpoint(tmp_path, 2) is None


def test_an_autoguided_run_and_its_samples(tmp_path, capsys):
    """A run with sample.autoguidance 2 draws its final grid guided by step 2; `sample` guides
    by default with the run's half-way checkpoint and differs from w = 1; the run's first
    checkpoint, with none before it, samples unguided and warns; a guide of another
    conditioning, or a model outside a run without sample.guide, is refused by name."""
    run = tmp_path / "run"
    flags = ["--out", str(run), "--quiet", *TINY, "--sample.autoguidance", "2"]
    assert main(["train", "--preset", "digits", *flags]) == 0
    assert (run / "samples" / "step-0000004.png").is_file()
    assert read_config(run).sample.autoguidance == 2.0
    common = ["--num_samples", "3", "--steps", "5", "--quiet"]
    for weight in ("1", "2"):
        out = tmp_path / f"w{weight}.png"
        assert main(["sample", str(run), "--autoguidance", weight, "--out", str(out), *common]) == 0
    one, two = (np.load(tmp_path / f"w{w}.npz")["samples"] for w in ("1", "2"))
    assert np.isfinite(two).all() and np.abs(one - two).max() > 1e-3
    model = load_model(run)
    assert load_guide(model).checkpoint.name == "step-0000002"
    first = str(run / "checkpoints" / "step-0000002")  # no earlier one: unguided, with a warning
    for weight in ("1", "2"):
        out = str(tmp_path / f"first-w{weight}.png")
        capsys.readouterr()
        assert main(["sample", first, "--autoguidance", weight, "--out", out, *common]) == 0
        assert ("no earlier checkpoint" in capsys.readouterr().err) == (weight == "2")
    one, two = (np.load(tmp_path / f"first-w{w}.npz")["samples"] for w in ("1", "2"))
    assert np.array_equal(one, two)
    other = tmp_path / "other"
    labelled = ["--model.class_conditional", "true"]
    assert (
        main(["train", "--preset", "digits", "--out", str(other), "--quiet", *TINY, *labelled]) == 0
    )
    with pytest.raises(ValueError, match=r"sample\.guide .*other.*conditioning differs"):
        load_guide(model, other / "checkpoints" / "step-0000002")
    lone = dataclasses.replace(model, source=ModelSource(tmp_path / "loose", "ddpmkit"))
    with pytest.raises(ValueError, match=r"needs sample\.guide"):
        load_guide(lone)
