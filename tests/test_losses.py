"""L_simple and its weights, the true bound of each parameterization; the EMA of the weights."""

import pytest
import torch

from ddpmkit import (
    HybridLoss,
    LossOutput,
    NetworkDenoiser,
    NoiseSchedule,
    SimpleLoss,
    UniformTimesteps,
    eps_from_x0,
    min_snr_weight,
    q_sample,
    x0_from_v,
)
from ddpmkit.core.parameterization import PARAMETERIZATIONS, training_target
from ddpmkit.losses import loss_weights
from ddpmkit.training.ema import EMA


class Oracle(torch.nn.Module):
    """Predicts exactly ε for a known x_0 (the loss's minimiser), or a fixed error on top."""

    def __init__(self, schedule, x0, parameterization, error=0.0):
        super().__init__()
        self.schedule, self.x0, self.param, self.error = schedule, x0, parameterization, error

    def forward(self, x_t, t, class_labels=None):
        ab = self.schedule.at(self.schedule.alpha_bar, t.long(), x_t)
        ab_prev = self.schedule.at(self.schedule.alpha_bar_prev, t.long(), x_t)
        eps = eps_from_x0(x_t, self.x0, ab)
        return training_target(self.param, self.x0, eps, x_t, ab, ab_prev) + self.error


@pytest.mark.parametrize("parameterization", PARAMETERIZATIONS)
def test_the_exact_prediction_has_zero_loss_and_an_offset_has_its_square(parameterization):
    s = NoiseSchedule.linear(100)
    x0 = torch.randn(32, 2, dtype=torch.float64)
    loss = SimpleLoss(s)
    g = torch.Generator().manual_seed(0)
    exact = NetworkDenoiser(Oracle(s, x0, parameterization), s, parameterization)
    assert float(loss(exact, x0, None, g).loss) == pytest.approx(0, abs=1e-12)
    oracle = Oracle(s, x0, parameterization, error=0.5)
    off = loss(NetworkDenoiser(oracle, s, parameterization), x0, None, g)
    assert isinstance(off, LossOutput)
    assert torch.allclose(off.per_sample, torch.full((32,), 0.25, dtype=torch.float64))


def test_loss_draws_t_uniformly():
    s = NoiseSchedule.linear(100)
    t, weights = UniformTimesteps(100).sample(100_000, torch.Generator().manual_seed(0))
    counts = torch.bincount(t, minlength=100).double()
    assert t.min() == 0 and t.max() == 99 and torch.all(weights == 1)
    assert counts.std() / counts.mean() < 0.05  # ≈ 1/√1000 for a uniform draw
    assert s.num_steps == 100


def test_min_snr_weight_equals_min_snr_gamma_on_the_x0_error():
    """Each parameterization's weighted error equals min(SNR, γ)·‖x_0 - x̂_0‖² (Hang et al. 2023)."""
    s, gamma = NoiseSchedule.linear(1000), 5.0
    t = torch.tensor([0, 100, 400, 999])
    x0 = torch.randn(4, 3, dtype=torch.float64)
    x0_err = torch.randn(4, 3, dtype=torch.float64) * 0.1
    ab = s.alpha_bar[t][:, None]
    snr = (ab / (1 - ab))[:, 0]
    x_t = q_sample(s, x0, t, torch.randn(4, 3, dtype=torch.float64))
    target = snr.clamp(max=gamma) * x0_err.pow(2).sum(1)
    eps_err = eps_from_x0(x_t, x0 + x0_err, ab) - eps_from_x0(x_t, x0, ab)
    v_of = lambda x: ab.sqrt() * eps_from_x0(x_t, x, ab) - (1 - ab).sqrt() * x  # noqa: E731
    v_err = v_of(x0 + x0_err) - v_of(x0)
    assert torch.allclose(x0_from_v(x_t, v_of(x0), ab), x0)
    ab_prev = s.alpha_bar_prev[t][:, None]

    def error(name):
        def target(x):
            return training_target(name, x, eps_from_x0(x_t, x, ab), x_t, ab, ab_prev)

        return target(x0 + x0_err) - target(x0)

    assert torch.allclose(error("eps"), eps_err) and torch.allclose(error("v"), v_err)
    for name in PARAMETERIZATIONS:
        weighted = min_snr_weight(s, name, gamma)[t] * error(name).pow(2).sum(1)
        assert torch.allclose(weighted, target), name
    assert loss_weights(s, "eps", "uniform", gamma) is None
    with pytest.raises(ValueError, match="unknown loss weighting"):
        loss_weights(s, "eps", "p2", gamma)


def test_ema_follows_its_recursion_with_warm_up():
    model = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.zeros_(model.weight)
    ema = EMA(model, decay=0.9, warmup=True)
    expected = 0.0
    for n in range(1, 6):
        model.weight.data.fill_(float(n))
        d = min(0.9, (1 + n) / (10 + n))
        expected = d * expected + (1 - d) * n
        ema.update(model)
        assert float(ema.model.weight) == pytest.approx(expected)
    assert not ema.model.weight.requires_grad


def test_the_true_bound_is_one_loss_whatever_the_network_predicts():
    """With fixed σ_t² = β_t, L_vlb of a prediction depends only on the x̂_0 it implies: five
    networks whose outputs all mean x̂_0 = x_0 + 0.3 have the same per-sample loss: T times
    KL(q(x_{t-1}|x_t, x_0) ‖ N(μ̃(x_t, x̂_0), β_t)) in bits/dim for t > 0 (Ho et al. 2020, eq. 5)."""
    s = NoiseSchedule.linear(50)
    x0 = torch.rand(64, 2, 3, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    x0 = x0 * 2 - 1  # float64: the μ̃-reading divides by c_x0, which magnifies float32 rounding
    per_sample = {}
    for name in PARAMETERIZATIONS:
        loss = HybridLoss(s, vlb_only=True, variance="beta")
        shifted = NetworkDenoiser(_Shifted(s, x0, name, error=0.3), s, name)
        out = loss(shifted, x0, None, torch.Generator().manual_seed(0))
        per_sample[name] = out.per_sample.double()
    t = out.t
    for name, values in per_sample.items():
        assert torch.allclose(values, per_sample["eps"], rtol=1e-4, atol=1e-6), name
    later = t > 0  # L_0 is the decoder's term
    beta, beta_tilde = s.betas[t][later], s.posterior_variance[t][later]
    coef = s.posterior_mean_coef_x0[t][later]
    # KL(N(μ̃, β̃) ‖ N(μ_θ, β)) per dimension, in bits, times T
    kl = 0.5 * (beta.log() - beta_tilde.log() + beta_tilde / beta - 1) + coef**2 * 0.09 / (2 * beta)
    expected = 50 * kl / torch.log(torch.tensor(2.0, dtype=torch.float64))
    assert torch.allclose(per_sample["eps"][later], expected, rtol=1e-6)


class _Shifted(Oracle):
    """Outputs, in its parameterization, x̂_0 = x_0 + shift."""

    def forward(self, x_t, t, class_labels=None):
        ab = self.schedule.at(self.schedule.alpha_bar, t.long(), x_t)
        ab_prev = self.schedule.at(self.schedule.alpha_bar_prev, t.long(), x_t)
        x0_hat = self.x0 + self.error
        eps = eps_from_x0(x_t, x0_hat, ab)
        return training_target(self.param, x0_hat, eps, x_t, ab, ab_prev)


def test_ncsn_weighting_is_lambda_sigma_squared():
    """λ(σ) = σ² on the VE score error (Song & Ermon 2019, eq. 6) is the ε-error for any
    parameterization: the weighted score error equals ‖ε̂ − ε‖²."""
    s = NoiseSchedule.geometric(100, 0.01, 10.0)
    t = torch.tensor([0, 30, 99])
    ab, ab_prev = s.alpha_bar[t][:, None], s.alpha_bar_prev[t][:, None]
    x0 = torch.randn(3, 4, dtype=torch.float64)
    eps = torch.randn(3, 4, dtype=torch.float64)
    x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
    x0_hat = x0 + 0.1 * torch.randn(3, 4, dtype=torch.float64)
    eps_hat = eps_from_x0(x_t, x0_hat, ab)
    eps_error = (eps_hat - eps).pow(2).sum(1)
    for name in PARAMETERIZATIONS:
        predicted = training_target(name, x0_hat, eps_hat, x_t, ab, ab_prev)
        wanted = training_target(name, x0, eps, x_t, ab, ab_prev)
        weighted = loss_weights(s, name, "ncsn", 5.0)[t] * (predicted - wanted).pow(2).sum(1)
        assert torch.allclose(weighted, eps_error, rtol=1e-6), name
