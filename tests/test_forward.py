"""q(x_t|x_0), q(x_t|x_{t-1}) and the posterior q(x_{t-1}|x_t, x_0) against Monte Carlo and Bayes."""

import math

import pytest
import torch

from ddpmkit import NoiseSchedule, posterior_mean, posterior_variance, q_sample, q_step

N = 200_000


def _bound(std: float, n: int = N, sigmas: float = 5.0) -> float:
    return sigmas * std / math.sqrt(n)


@pytest.mark.parametrize("t", [0, 10, 300, 999])
def test_q_sample_has_the_closed_form_moments(t):
    s = NoiseSchedule.linear()
    g = torch.Generator().manual_seed(t)
    x0 = torch.full((N, 1), 0.7, dtype=torch.float64)
    x_t = q_sample(s, x0, torch.full((N,), t), torch.randn(N, 1, generator=g, dtype=torch.float64))
    mean, var = math.sqrt(float(s.alpha_bar[t])) * 0.7, 1 - float(s.alpha_bar[t])
    assert float(x_t.mean()) == pytest.approx(mean, abs=_bound(math.sqrt(var)))
    assert float(x_t.var()) == pytest.approx(var, abs=_bound(var * math.sqrt(2)))


def test_q_sample_matches_composing_single_steps():
    s = NoiseSchedule.cosine(200)
    g = torch.Generator().manual_seed(0)
    x0 = torch.tensor([[-0.5, 1.0]], dtype=torch.float64).expand(N, 2)
    x, t_end = x0, 120
    for t in range(t_end + 1):
        x = q_step(s, x, torch.full((N,), t), torch.randn(N, 2, generator=g, dtype=torch.float64))
    direct = q_sample(
        s, x0, torch.full((N,), t_end), torch.randn(N, 2, generator=g, dtype=torch.float64)
    )
    var = 1 - float(s.alpha_bar[t_end])
    assert torch.allclose(x.mean(0), direct.mean(0), atol=2 * _bound(math.sqrt(var)))
    assert torch.allclose(x.var(0), direct.var(0), atol=2 * _bound(var * math.sqrt(2)))
    assert torch.allclose(x.mean(0), math.sqrt(float(s.alpha_bar[t_end])) * x0[0], atol=2e-2)


@pytest.mark.parametrize("t", [1, 50, 500, 999])
def test_posterior_matches_bayes_rule_on_a_grid(t):
    """q(x_{t-1}|x_t, x_0) ∝ q(x_t|x_{t-1}) q(x_{t-1}|x_0), normalised numerically in 1-D."""
    s = NoiseSchedule.linear()
    x0, x_t = 0.4, -0.3
    beta, ab_prev = float(s.betas[t]), float(s.alpha_bar[t - 1])
    grid = torch.linspace(-6, 6, 400_001, dtype=torch.float64)
    log_prior = -((grid - math.sqrt(ab_prev) * x0) ** 2) / (2 * (1 - ab_prev))
    log_lik = -((x_t - math.sqrt(1 - beta) * grid) ** 2) / (2 * beta)
    w = torch.softmax(log_prior + log_lik, dim=0)
    mean = float((w * grid).sum())
    var = float((w * (grid - mean) ** 2).sum())
    tt = torch.tensor([t])
    one = torch.ones(1, 1, dtype=torch.float64)
    assert float(posterior_mean(s, x0 * one, x_t * one, tt)) == pytest.approx(mean, abs=1e-6)
    assert float(posterior_variance(s, tt, one)) == pytest.approx(var, rel=1e-4)
