"""L_simple and its weights; the EMA of the weights."""

import pytest
import torch

from ddpmkit.core.denoisers import NetworkDenoiser
from ddpmkit.core.forward import q_sample
from ddpmkit.core.parameterization import eps_from_x0, x0_from_v
from ddpmkit.core.schedules import NoiseSchedule
from ddpmkit.training.ema import EMA
from ddpmkit.training.losses import SimpleLoss, UniformTimesteps, loss_weights, min_snr_weight


class Oracle(torch.nn.Module):
    """Predicts exactly ε for a known x_0 (the loss's minimiser), or a fixed error on top."""

    def __init__(self, schedule, x0, parameterization, error=0.0):
        super().__init__()
        self.schedule, self.x0, self.param, self.error = schedule, x0, parameterization, error

    def forward(self, x_t, t, class_labels=None):
        ab = self.schedule.at(self.schedule.alpha_bar, t.long(), x_t)
        eps = eps_from_x0(x_t, self.x0, ab)
        out = {"eps": eps, "x0": self.x0, "v": ab.sqrt() * eps - (1 - ab).sqrt() * self.x0}[
            self.param
        ]
        return out + self.error


@pytest.mark.parametrize("parameterization", ["eps", "x0", "v"])
def test_the_exact_prediction_has_zero_loss_and_an_offset_has_its_square(parameterization):
    s = NoiseSchedule.linear(100)
    x0 = torch.randn(32, 2, dtype=torch.float64)
    loss = SimpleLoss(s)
    g = torch.Generator().manual_seed(0)
    exact = NetworkDenoiser(Oracle(s, x0, parameterization), s, parameterization)
    assert float(loss(exact, x0, None, g).loss) == pytest.approx(0, abs=1e-12)
    oracle = Oracle(s, x0, parameterization, error=0.5)
    off = loss(NetworkDenoiser(oracle, s, parameterization), x0, None, g)
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
    for name, err in (("eps", eps_err), ("x0", x0_err), ("v", v_err)):
        weighted = min_snr_weight(s, name, gamma)[t] * err.pow(2).sum(1)
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
