"""ε ↔ x_0 ↔ v ↔ score round-trips and eq. 11 against the posterior mean."""

import pytest
import torch

from ddpmkit.core.forward import posterior_mean
from ddpmkit.core.parameterization import (
    X0_FROM_OUTPUT,
    eps_from_score,
    eps_from_v,
    eps_from_x0,
    reverse_mean_from_eps,
    score_from_eps,
    training_target,
    v_from_x0_eps,
    x0_from_eps,
    x0_from_v,
)
from ddpmkit.core.schedules import NoiseSchedule


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    s = NoiseSchedule.linear()
    t = torch.tensor([0, 5, 250, 700, 999])
    x0 = torch.randn(5, 3, 4, 4, generator=g, dtype=torch.float64)
    eps = torch.randn(5, 3, 4, 4, generator=g, dtype=torch.float64)
    ab = s.at(s.alpha_bar, t, x0)
    return s, t, x0, eps, ab, ab.sqrt() * x0 + (1 - ab).sqrt() * eps


def test_round_trips(batch):
    _, _, x0, eps, ab, x_t = batch
    assert torch.allclose(x0_from_eps(x_t, eps, ab), x0, atol=1e-8)
    assert torch.allclose(eps_from_x0(x_t, x0, ab), eps, atol=1e-8)
    v = v_from_x0_eps(x0, eps, ab)
    assert torch.allclose(x0_from_v(x_t, v, ab), x0, atol=1e-10)
    assert torch.allclose(eps_from_v(x_t, v, ab), eps, atol=1e-10)
    assert torch.allclose(eps_from_score(score_from_eps(eps, ab), ab), eps, atol=1e-12)


def test_every_parameterization_reads_x0_from_its_own_target(batch):
    _, _, x0, eps, ab, x_t = batch
    for name, read_x0 in X0_FROM_OUTPUT.items():
        target = training_target(name, x0, eps, ab)
        assert torch.allclose(read_x0(x_t, target, ab), x0, atol=1e-8), name


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
        training_target("score", x0, eps, ab)
