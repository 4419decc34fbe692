"""ddpmkit's samplers against diffusers' schedulers on the same exact denoiser (parity, not magic sums).

diffusers keeps its tables in float32, so agreement is to about 1e-6 (1e-4 for Euler, whose step
casts the state to float32), far below any discretisation error the testbed measures.
"""

import numpy as np
import pytest
import torch

from ddpmkit import NoiseSchedule, ode_euler, sample
from ddpmkit.evaluation.testbed import TimestepEpsModel, gaussian, sharp_mixture

diffusers = pytest.importorskip("diffusers")
# diffusers builds numpy arrays from tensors the old way; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

CONFIG = {
    "num_train_timesteps": 1000,
    "beta_start": 1e-4,
    "beta_end": 0.02,
    "beta_schedule": "linear",
    "prediction_type": "epsilon",
}


def run_scheduler(scheduler, steps, model, noise):
    scheduler.set_timesteps(steps)
    x = noise * scheduler.init_noise_sigma
    for t in scheduler.timesteps:
        x = scheduler.step(model(scheduler.scale_model_input(x, t), t), t, x).prev_sample
    return x


@pytest.fixture(params=["gaussian-5", "sharp-2d"])
def dist(request):
    return gaussian(5) if request.param == "gaussian-5" else sharp_mixture()


def noise_for(dist):
    return torch.randn(
        128, dist.dim, generator=torch.Generator().manual_seed(0), dtype=torch.float64
    )


# diffusers' DDIM steps from t to t - T//n, its next listed timestep only when n divides T.
@pytest.mark.parametrize("steps", [4, 10])
@pytest.mark.parametrize(
    ("name", "scheduler_class", "extra"),
    [
        ("ddim", "DDIMScheduler", {"clip_sample": False}),
        ("dpm++2m", "DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++"}),
    ],
)
def test_sampler_matches_diffusers_scheduler(dist, steps, name, scheduler_class, extra):
    schedule, noise = NoiseSchedule.linear(1000), noise_for(dist)
    ours = sample(name, dist.denoiser(), schedule, noise, steps, grid="trailing").samples
    scheduler = getattr(diffusers, scheduler_class)(**CONFIG, **extra, timestep_spacing="trailing")
    model = TimestepEpsModel(dist.denoiser(), schedule)
    theirs = run_scheduler(scheduler, steps, model, noise)
    assert model.calls == steps
    assert torch.allclose(ours, theirs, atol=1e-5)


def test_euler_with_fractional_timesteps_matches_ode_euler(dist):
    """diffusers' Euler scales inputs by 1/√(σ² + 1) and interpolates σ linearly in t."""
    schedule, noise, steps = NoiseSchedule.linear(1000), noise_for(dist), 7
    scheduler = diffusers.EulerDiscreteScheduler(**CONFIG, timestep_spacing="linspace")
    theirs = run_scheduler(scheduler, steps, TimestepEpsModel(dist.denoiser(), schedule), noise)
    timesteps = np.linspace(0, 999, steps)[::-1]
    assert not np.allclose(timesteps, timesteps.round())  # fractional t are exercised
    sigmas = np.interp(timesteps, np.arange(1000), schedule.sigmas.numpy())
    grid = torch.cat([torch.from_numpy(sigmas.copy()), torch.zeros(1, dtype=torch.float64)])
    ours = ode_euler(dist.denoiser(), grid, noise).samples
    assert torch.allclose(ours, theirs, atol=1e-4)


def test_eps_model_inverts_to_the_denoiser():
    dist, schedule = gaussian(3), NoiseSchedule.linear(1000)
    model = TimestepEpsModel(dist.denoiser(), schedule)
    x_t = noise_for(dist)
    ab = float(schedule.alpha_bar[400])
    x0 = (x_t - (1 - ab) ** 0.5 * model(x_t, 400)) / ab**0.5
    sigma = schedule.sigmas[400]
    assert torch.allclose(x0, dist.denoiser()(x_t / ab**0.5, sigma), atol=1e-10)
