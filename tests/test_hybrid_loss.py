"""L_hybrid and L_vlb (Nichol & Dhariwal 2021, §3.1, §3.3) and importance sampling of t (eq. 17)."""

import math

import pytest
import torch
from torch import nn

from ddpmkit import HybridLoss, NetworkDenoiser, NoiseSchedule, SimpleLoss, UniformTimesteps
from ddpmkit.core.randomness import randn_like
from ddpmkit.likelihood import schedule_log_variance, vlb_term
from ddpmkit.losses import SecondMomentTimesteps
from ddpmkit.networks import MLPConfig, MLPDenoiser

LEVELS = torch.linspace(-1.0, 1.0, 256)


class FixedTimesteps:
    """Always the given t, weights 1: lets a test reproduce the loss's draw."""

    def __init__(self, t):
        self.t = t

    def sample(self, batch_size, generator):
        return self.t, torch.ones(batch_size)

    def update(self, t, losses):
        self.seen = losses

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


class Output(nn.Module):
    """A 'network' whose output is a free parameter, to read the gradient on each channel."""

    def __init__(self, shape):
        super().__init__()
        self.value = nn.Parameter(
            0.3 * torch.randn(shape, generator=torch.Generator().manual_seed(0))
        )

    def forward(self, x_t, t, class_labels=None):
        return self.value


class _FlatNetwork(nn.Module):
    """The MLP applied to flattened images, output reshaped to (B, 2C, H, W)."""

    def __init__(self, mlp):
        super().__init__()
        self.mlp = mlp

    def forward(self, x_t, t, class_labels=None):
        out = self.mlp(x_t.flatten(1), t)
        mean, raw = out.chunk(2, dim=1)
        return torch.cat([mean.reshape(x_t.shape), raw.reshape(x_t.shape)], dim=1)


def _data(batch=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return LEVELS[torch.randint(0, 256, (batch, 2, 4, 4), generator=g)]


def test_the_vlb_part_is_t_times_the_bound_term_of_the_likelihood_module():
    schedule = NoiseSchedule.cosine(30)
    x0, t = _data(), torch.tensor([0, 1, 5, 12, 29, 3])
    torch.manual_seed(1)
    network = MLPDenoiser(MLPConfig(dim=32, hidden=32, num_blocks=1, out_dim=64))
    flat = _FlatNetwork(network)
    loss = HybridLoss(schedule, timesteps=FixedTimesteps(t), vlb_only=True)
    denoiser = NetworkDenoiser(flat, schedule, "eps", learned_variance=True)
    out = loss(denoiser, x0, None, torch.Generator().manual_seed(7))
    noise = randn_like(x0, torch.Generator().manual_seed(7))
    expected = vlb_term(
        denoiser, schedule, x0, t, noise, schedule_log_variance(schedule, "learned"), clip=None
    )
    assert torch.allclose(out.per_sample.double(), 30 * expected, rtol=1e-5)
    assert torch.allclose(loss.timesteps.seen, 30 * expected, rtol=1e-5)


def test_the_hybrid_loss_stops_the_vlb_gradient_at_the_mean():
    schedule = NoiseSchedule.cosine(30)
    x0, t = _data(), torch.tensor([0, 2, 5, 12, 20, 3])
    output = Output((6, 4, 4, 4))
    hybrid = HybridLoss(schedule, vlb_weight=0.5, timesteps=FixedTimesteps(t))
    denoiser = NetworkDenoiser(output, schedule, "eps", learned_variance=True)
    hybrid(denoiser, x0, None, torch.Generator().manual_seed(3)).loss.backward()
    grad = output.value.grad.clone()
    # the mean channels get exactly L_simple's gradient
    eps = randn_like(x0, torch.Generator().manual_seed(3))
    output.value.grad = None
    ((output.value[:, :2] - eps) ** 2).flatten(1).mean(1).mean().backward()
    assert torch.allclose(grad[:, :2], output.value.grad[:, :2], atol=1e-7)
    assert grad[:, 2:].abs().sum() > 0  # Σ_θ learns from L_vlb
    # L_vlb alone trains the mean too
    output.value.grad = None
    vlb = HybridLoss(schedule, timesteps=FixedTimesteps(t), vlb_only=True)
    vlb(denoiser, x0, None, torch.Generator().manual_seed(3)).loss.backward()
    assert output.value.grad[:, :2].abs().sum() > 0


def test_second_moment_sampling_is_uniform_until_every_t_has_a_full_history():
    sampler = SecondMomentTimesteps(5, history=3)
    for step in range(5):
        sampler.update(torch.tensor([step] * 2), torch.tensor([1.0, 2.0]))
    assert torch.equal(sampler.probabilities(), torch.full((5,), 0.2, dtype=torch.float64))
    _, weights = sampler.sample(4, torch.Generator().manual_seed(0))
    assert torch.equal(weights, torch.ones(4))


def test_second_moment_probabilities_follow_eq_17_and_keep_the_last_losses():
    sampler = SecondMomentTimesteps(4, history=2, uniform_share=0.1)
    losses = {0: [9.0, 1.0, 1.0], 1: [3.0, 4.0], 2: [2.0, 2.0], 3: [0.0, 6.0]}
    for step, values in losses.items():
        for value in values:
            sampler.update(torch.tensor([step]), torch.tensor([value]))
    rms = torch.tensor([1.0, math.sqrt(12.5), 2.0, math.sqrt(18.0)], dtype=torch.float64)
    expected = 0.9 * rms / rms.sum() + 0.1 / 4  # t = 0 forgot its 9.0
    assert torch.allclose(sampler.probabilities(), expected)
    t, weights = sampler.sample(200_000, torch.Generator().manual_seed(1))
    frequencies = torch.bincount(t, minlength=4).double() / len(t)
    assert torch.allclose(frequencies, expected, atol=4 * math.sqrt(0.25 / len(t)))
    assert torch.allclose(weights.double(), 1 / (4 * expected[t]), rtol=1e-6)
    # importance weights make the weighted mean an unbiased estimate of the uniform mean
    values = torch.tensor([5.0, -1.0, 2.0, 7.0], dtype=torch.float64)
    assert (weights.double() * values[t]).mean().item() == pytest.approx(
        values.mean().item(), rel=0.02
    )


def test_second_moment_state_round_trips():
    sampler = SecondMomentTimesteps(3, history=2)
    sampler.update(torch.tensor([0, 1, 2, 0, 1, 2, 2]), torch.arange(7.0))
    restored = SecondMomentTimesteps(3, history=2)
    restored.load_state_dict(sampler.state_dict())
    a = sampler.sample(10, torch.Generator().manual_seed(5))
    b = restored.sample(10, torch.Generator().manual_seed(5))
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    with pytest.raises(ValueError, match="history"):
        SecondMomentTimesteps(4, history=2).load_state_dict(sampler.state_dict())
    assert UniformTimesteps(3).state_dict() == {}


def test_simple_loss_learns_its_timestep_sampler_from_its_own_losses():
    schedule = NoiseSchedule.cosine(3)
    sampler = SecondMomentTimesteps(3, history=1)
    loss = SimpleLoss(schedule, timesteps=sampler)
    output = Output((64, 2, 4, 4))
    loss(
        NetworkDenoiser(output, schedule, "eps"), _data(64), None, torch.Generator().manual_seed(0)
    )
    assert (sampler.counts == 1).all()
    assert (sampler.history > 0).all()
