"""The schedule's tables against their definitions (Ho et al. 2020, eqs. 2–7)."""

import math

import pytest
import torch

from ddpmkit import NoiseSchedule

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


def test_ve_levels_are_ncsns_geometric_sequence():
    s = NoiseSchedule.geometric(200, 0.01, 10.0)
    assert s.sigmas[0] == pytest.approx(0.01, rel=1e-12) and s.sigmas[-1] == pytest.approx(10.0)
    ratios = s.sigmas[1:] / s.sigmas[:-1]
    assert torch.allclose(ratios, ratios[0].expand_as(ratios), rtol=1e-10)
    assert torch.allclose(s.alpha_bar, 1 / (1 + s.sigmas**2), rtol=1e-12)
    with pytest.raises(ValueError, match="0 < σ_min < σ_max"):
        NoiseSchedule.geometric(10, 1.0, 0.5)


def test_sub_vp_has_the_sub_vp_marginal():
    """sub-VP: x_t = √ᾱ x_0 + (1 − ᾱ) ε (Song et al. 2021, eq. 29), so σ_t = (1 − ᾱ_t)/√ᾱ_t, below
    VP's √(1 − ᾱ_t)/√ᾱ_t at every t; drawn in VE coordinates its variance on N(0, 1) data is
    1 + σ_t² (checked by Monte Carlo)."""
    vp = NoiseSchedule.linear(100)
    sub = vp.sub_vp()
    assert torch.allclose(sub.sigmas, (1 - vp.alpha_bar) / vp.alpha_bar.sqrt(), rtol=1e-10)
    assert bool((sub.sigmas < vp.sigmas).all())
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(2, 200_000, generator=g, dtype=torch.float64)
    t = 30
    sub_vp_state = vp.alpha_bar[t].sqrt() * x0 + (1 - vp.alpha_bar[t]) * eps
    ve = sub_vp_state / vp.alpha_bar[t].sqrt()  # the state in VE coordinates: x_0 + σ_t ε
    assert float(ve.var()) == pytest.approx(1 + float(sub.sigmas[t]) ** 2, rel=0.01)
