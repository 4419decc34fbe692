"""The schedule's tables against their definitions (Ho et al. 2020, eqs. 2–7)."""

import math

import pytest
import torch

from ddpmkit.core.schedules import NoiseSchedule

SCHEDULES = {
    "linear": NoiseSchedule.linear(),
    "linear-T100": NoiseSchedule.linear(100),
    "cosine": NoiseSchedule.cosine(),
    "sigmoid": NoiseSchedule.sigmoid(),
    "custom": NoiseSchedule.from_betas(torch.linspace(0.001, 0.2, 50)),
}


@pytest.mark.parametrize("name", SCHEDULES)
def test_alpha_bar_is_the_running_product_of_alphas(name):
    s = SCHEDULES[name]
    for t in (0, 1, s.num_steps // 2, s.num_steps - 1):
        product = math.prod(1.0 - float(b) for b in s.betas[: t + 1])
        assert float(s.alpha_bar[t]) == pytest.approx(product, rel=1e-10)
    assert s.alpha_bar.dtype == torch.float64


@pytest.mark.parametrize("name", SCHEDULES)
def test_derived_tables_match_their_formulas(name):
    s = SCHEDULES[name]
    t = s.num_steps // 3
    ab, ab_prev, beta = float(s.alpha_bar[t]), float(s.alpha_bar[t - 1]), float(s.betas[t])
    assert float(s.posterior_variance[t]) == pytest.approx((1 - ab_prev) / (1 - ab) * beta)
    assert float(s.posterior_mean_coef_x0[t]) == pytest.approx(math.sqrt(ab_prev) * beta / (1 - ab))
    coef_xt = math.sqrt(1 - beta) * (1 - ab_prev) / (1 - ab)
    assert float(s.posterior_mean_coef_xt[t]) == pytest.approx(coef_xt)
    assert float(s.sigmas[t]) == pytest.approx(math.sqrt((1 - ab) / ab))
    assert float(s.log_snr[t]) == pytest.approx(math.log(ab / (1 - ab)))
    assert float(s.posterior_variance[0]) == 0.0
    assert s.posterior_log_variance_clipped[0] == s.posterior_log_variance_clipped[1]


def test_linear_schedule_is_the_papers_and_rescales_with_T():
    s = NoiseSchedule.linear()
    assert float(s.betas[0]) == pytest.approx(1e-4) and float(s.betas[-1]) == pytest.approx(0.02)
    short = NoiseSchedule.linear(250)
    assert float(short.betas[0]) == pytest.approx(4e-4) and float(short.betas[-1]) == pytest.approx(
        0.08
    )
    # The rescaling keeps the end of the process (ᾱ_T) about where it is at T = 1000.
    assert float(short.log_snr[-1]) == pytest.approx(float(s.log_snr[-1]), abs=1.0)


def test_cosine_schedule_follows_its_alpha_bar_curve():
    T, s_off = 1000, 0.008
    s = NoiseSchedule.cosine(T, s_off)
    f = lambda t: math.cos((t / T + s_off) / (1 + s_off) * math.pi / 2) ** 2  # noqa: E731
    for t in (0, 100, 500, 900):
        assert float(s.alpha_bar[t]) == pytest.approx(f(t + 1) / f(0), rel=1e-9)
    assert float(s.betas.max()) <= 0.999


def test_sigma_and_t_convert_both_ways():
    s = NoiseSchedule.linear()
    t = torch.tensor([0.0, 1.0, 10.5, 500.25, 999.0], dtype=torch.float64)
    assert torch.allclose(s.sigma_to_t(s.t_to_sigma(t)), t, atol=1e-9)
    assert torch.allclose(s.t_to_sigma(torch.arange(1000.0, dtype=torch.float64)), s.sigmas)


@pytest.mark.parametrize(
    ("betas", "message"),
    [
        ([0.1, 1.0, 0.2], "beta\\[1\\]"),
        ([0.1, 0.0], "beta\\[1\\]"),
        ([0.1, float("nan")], "non-finite"),
        ([[0.1, 0.2]], "1-D"),
        ([0.1], "length"),
    ],
)
def test_invalid_betas_are_rejected_clearly(betas, message):
    with pytest.raises(ValueError, match=message):
        NoiseSchedule.from_betas(betas)


def test_invalid_number_of_steps_is_rejected():
    with pytest.raises(ValueError, match="T must be"):
        NoiseSchedule.linear(1)
    with pytest.raises(ValueError, match="T = 20"):
        NoiseSchedule.linear(20)  # the rescaled β_T would be 1
