"""EDM's log-normal noise levels (Karras et al. 2022, Table 1) on a discrete VP grid."""

import math

import pytest
import torch

from ddpmkit import DiffusionConfig, NoiseSchedule
from ddpmkit.losses import LogNormalTimesteps, timestep_sampler


def test_drawn_log_sigmas_have_the_configured_mean_and_spread():
    """On the fine linear grid (T = 1000) the rounding to the nearest σ_t barely moves the
    log-normal's moments: Monte Carlo mean and standard deviation of ln σ_t within 5 standard
    errors plus the grid's largest half spacing in the bulk."""
    schedule = NoiseSchedule.linear(1000)
    mean, std, n = -1.2, 1.2, 40_000
    t, weights = LogNormalTimesteps(schedule, mean, std).sample(n, torch.Generator().manual_seed(0))
    assert torch.equal(weights, torch.ones(n))
    log_sigma = schedule.sigmas.double().log()[t]
    bulk = log_sigma[(log_sigma - mean).abs() < 3 * std]
    half_spacing = float(torch.diff(schedule.sigmas.double().log()).abs().max()) / 2
    assert float(log_sigma.mean()) == pytest.approx(mean, abs=5 * std / math.sqrt(n) + 0.02)
    assert float(log_sigma.std()) == pytest.approx(std, abs=5 * std / math.sqrt(2 * n) + 0.02)
    assert float((bulk - mean).abs().max()) <= 3 * std + half_spacing


def test_grid_probabilities_are_the_normal_mass_of_each_log_sigma_cell():
    """p_t = Φ(upper edge) − Φ(lower edge), the ends open: on a three-level grid the middle
    level's mass is computed by hand from the edges' midpoints."""
    schedule = NoiseSchedule.from_sigmas(torch.tensor([0.1, 1.0, 10.0]))
    sampler = LogNormalTimesteps(schedule, mean=0.0, std=1.0)
    edge = math.log(10.0) / 2  # midway between ln 1 and ln 10 (and, mirrored, ln 0.1)
    middle = math.erf(edge / math.sqrt(2))
    assert sampler.p.tolist() == pytest.approx([(1 - middle) / 2, middle, (1 - middle) / 2])
    draws = sampler.sample(20_000, torch.Generator().manual_seed(1))[0]
    share = float((draws == 1).double().mean())
    assert share == pytest.approx(middle, abs=5 * math.sqrt(middle * (1 - middle) / 20_000))


def test_lognormal_is_refused_where_the_loss_must_stay_a_bound():
    schedule = NoiseSchedule.linear(100)
    with pytest.raises(ValueError, match="lognormal"):
        DiffusionConfig(loss="vlb", timestep_sampling="lognormal")
    with pytest.raises(ValueError, match="lognormal_std"):
        timestep_sampler("lognormal", schedule, std=0.0)
