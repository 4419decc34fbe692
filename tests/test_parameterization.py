"""ε ↔ x_0 ↔ v ↔ score ↔ μ̃ round-trips, eq. 11 against the posterior mean, and the five ways to
model p(x_{t-1}|x_t) agreeing at their optimum on Gaussian data."""

import pytest
import torch

from ddpmkit import (
    NoiseSchedule,
    eps_from_score,
    eps_from_v,
    eps_from_x0,
    posterior_mean,
    score_from_eps,
    v_from_x0_eps,
    x0_from_eps,
    x0_from_score,
    x0_from_v,
)
from ddpmkit.core.parameterization import (
    PARAMETERIZATIONS,
    X0_FROM_OUTPUT,
    mean_from_x0,
    reverse_mean_from_eps,
    training_target,
    x0_from_mean,
)


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    s = NoiseSchedule.linear()
    t = torch.tensor([0, 5, 250, 700, 999])
    x0 = torch.randn(5, 3, 4, 4, generator=g, dtype=torch.float64)
    eps = torch.randn(5, 3, 4, 4, generator=g, dtype=torch.float64)
    ab = s.at(s.alpha_bar, t, x0)
    return s, t, x0, eps, ab, ab.sqrt() * x0 + (1 - ab).sqrt() * eps


def _previous(s: NoiseSchedule, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return s.at(s.alpha_bar_prev, t, like)


def test_round_trips(batch):
    _, _, x0, eps, ab, x_t = batch
    assert torch.allclose(x0_from_eps(x_t, eps, ab), x0, atol=1e-8)
    assert torch.allclose(eps_from_x0(x_t, x0, ab), eps, atol=1e-8)
    v = v_from_x0_eps(x0, eps, ab)
    assert torch.allclose(x0_from_v(x_t, v, ab), x0, atol=1e-10)
    assert torch.allclose(eps_from_v(x_t, v, ab), eps, atol=1e-10)
    assert torch.allclose(eps_from_score(score_from_eps(eps, ab), ab), eps, atol=1e-12)


def test_every_parameterization_reads_x0_from_its_own_target(batch):
    s, t, x0, eps, ab, x_t = batch
    ab_prev = _previous(s, t, x_t)
    assert set(X0_FROM_OUTPUT) == set(PARAMETERIZATIONS) == {"eps", "x0", "v", "score", "mean"}
    for name, read_x0 in X0_FROM_OUTPUT.items():
        target = training_target(name, x0, eps, x_t, ab, ab_prev)
        assert torch.allclose(read_x0(x_t, target, ab, ab_prev), x0, atol=1e-6), name


def test_score_and_mean_round_trips(batch):
    s, t, x0, eps, ab, x_t = batch
    assert torch.allclose(x0_from_score(x_t, score_from_eps(eps, ab), ab), x0, atol=1e-6)
    ab_prev = _previous(s, t, x_t)
    mean = mean_from_x0(x_t, x0, ab, ab_prev)
    assert torch.allclose(mean, posterior_mean(s, x0, x_t, t), atol=1e-12)  # the table's μ̃
    assert torch.allclose(x0_from_mean(x_t, mean, ab, ab_prev), x0, atol=1e-8)


@pytest.mark.parametrize("t", [30, 400, 900])
def test_the_five_optimal_predictors_give_one_reverse_mean_on_gaussian_data(t):
    """x_0 ~ N(m, s²): each target (ε, x_0, v, score, μ̃) regressed on x_t by least squares over
    200,000 draws (the MSE optimum is linear for Gaussian data) and read as a reverse mean
    μ_θ(x_t) agrees with the exact one, μ̃(x_t, E[x_0|x_t]) (Ho et al. 2020, eq. 7 with
    the posterior mean); the Monte Carlo error is ~0.3%, the bound 2% of μ's spread."""
    schedule, m, sd = NoiseSchedule.linear(), 0.7, 0.4
    g = torch.Generator().manual_seed(int(t))
    n = 200_000
    x0 = m + sd * torch.randn(n, generator=g, dtype=torch.float64)
    eps = torch.randn(n, generator=g, dtype=torch.float64)
    ab = schedule.alpha_bar[t].expand(n)
    ab_prev = schedule.alpha_bar_prev[t].expand(n)
    x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
    grid = torch.linspace(-2, 2, 9, dtype=torch.float64)
    a, a_prev = ab[: len(grid)], ab_prev[: len(grid)]
    posterior_x0 = m + a.sqrt() * sd**2 / (a * sd**2 + 1 - a) * (grid - a.sqrt() * m)
    exact = mean_from_x0(grid, posterior_x0, a, a_prev)
    design = torch.stack([torch.ones_like(x_t), x_t], dim=1)
    for name in PARAMETERIZATIONS:
        target = training_target(name, x0, eps, x_t, ab, ab_prev)
        coef = torch.linalg.lstsq(design, target[:, None]).solution[:, 0]
        prediction = coef[0] + coef[1] * grid  # the optimal predictor of this kind at the grid
        x0_hat = X0_FROM_OUTPUT[name](grid, prediction, a, a_prev)
        mean = mean_from_x0(grid, x0_hat, a, a_prev)
        spread = float(exact.max() - exact.min())
        assert float((mean - exact).abs().max()) < 0.02 * spread, name


def test_score_is_the_gradient_of_the_noised_gaussian_log_density():
    """For x_0 = 0, q(x_t) = N(0, (1-ᾱ)I), whose score -x_t/(1-ᾱ) is -ε/√(1-ᾱ)."""
    ab = torch.tensor(0.3, dtype=torch.float64)
    eps = torch.randn(10, dtype=torch.float64)
    x_t = (1 - ab).sqrt() * eps
    assert torch.allclose(score_from_eps(eps, ab), -x_t / (1 - ab))


def test_equation_11_equals_the_posterior_mean_at_the_predicted_x0(batch):
    s, t, _, eps, ab, x_t = batch
    alpha = s.at(s.alphas, t, x_t)
    mu_eq11 = reverse_mean_from_eps(x_t, eps, alpha, ab)
    mu_posterior = posterior_mean(s, x0_from_eps(x_t, eps, ab), x_t, t)
    assert torch.allclose(mu_eq11, mu_posterior, atol=1e-8)


def test_unknown_parameterization_is_rejected(batch):
    _, _, x0, eps, ab, _ = batch
    with pytest.raises(ValueError, match="unknown parameterization"):
        training_target("velocity", x0, eps, x0, ab, ab)
