"""Algorithm 2 against its literal transcription, and against the exact Gaussian data distribution."""

import math

import pytest
import torch

from ddpmkit import (
    ClippedDenoiser,
    GaussianDenoiser,
    NetworkDenoiser,
    NoiseSchedule,
    PerSampleGenerator,
    ddpm_ancestral,
)
from ddpmkit.core.parameterization import reverse_mean_from_eps

MEAN = torch.tensor([0.5, -0.3, 0.1], dtype=torch.float64)
_A = torch.tensor([[0.6, 0.0, 0.0], [0.3, 0.4, 0.0], [-0.2, 0.1, 0.3]], dtype=torch.float64)
COV = _A @ _A.T


class OptimalEps(torch.nn.Module):
    """ε*(x_t, t) = E[ε | x_t] for Gaussian data, from the exact x_0 estimate."""

    def __init__(self, schedule):
        super().__init__()
        self.schedule = schedule
        self.exact = GaussianDenoiser(MEAN, COV)

    def forward(self, x_t, t, class_labels=None):
        ab = self.schedule.alpha_bar[t.round().long()].to(x_t.dtype)[:, None]
        x0 = self.exact(x_t / ab.sqrt(), ((1 - ab) / ab).sqrt()[:, 0])
        return (x_t - ab.sqrt() * x0) / (1 - ab).sqrt()


def literal_algorithm_2(eps_model, schedule, x_T, variance, noises):
    """Ho et al. (2020), Algorithm 2, transcribed line by line (t is 0-based here)."""
    x = x_T
    sigma2 = schedule.betas if variance == "beta" else schedule.posterior_variance
    for i, t in enumerate(range(schedule.num_steps - 1, -1, -1)):
        z = noises[i] if t > 0 else torch.zeros_like(x)
        eps = eps_model(x, torch.full((len(x),), float(t), dtype=x.dtype))
        alpha, ab = schedule.alphas[t].to(x.dtype), schedule.alpha_bar[t].to(x.dtype)
        x = reverse_mean_from_eps(x, eps, alpha, ab) + sigma2[t].sqrt() * z
    return x


@pytest.mark.parametrize("variance", ["beta", "beta_tilde"])
def test_sampler_equals_literal_algorithm_2(variance):
    s = NoiseSchedule.linear(50)
    model = OptimalEps(s)
    x_T = torch.randn(64, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    g = torch.Generator().manual_seed(1)
    ours = ddpm_ancestral(NetworkDenoiser(model, s, "eps"), s, x_T, variance=variance, generator=g)
    g = torch.Generator().manual_seed(1)
    noises = [torch.randn(64, 3, generator=g, dtype=torch.float64) for _ in range(s.num_steps - 1)]
    expected = literal_algorithm_2(model, s, x_T, variance, noises)
    assert torch.allclose(ours.samples, expected, atol=1e-6)
    assert ours.nfe == s.num_steps


@pytest.mark.parametrize("variance", ["beta", "beta_tilde"])
def test_exact_eps_reproduces_the_gaussian_data_distribution(variance):
    """Fed the optimal ε for N(m, S) data, Algorithm 2 must return N(m, S) samples."""
    s, n = NoiseSchedule.linear(1000), 20_000
    g = torch.Generator().manual_seed(2)
    x_T = torch.randn(n, 3, generator=g, dtype=torch.float64)
    out = ddpm_ancestral(
        NetworkDenoiser(OptimalEps(s), s, "eps"), s, x_T, variance=variance, generator=g
    )
    x = out.samples
    std = COV.diag().sqrt()
    assert torch.all((x.mean(0) - MEAN).abs() < 5 * std / math.sqrt(n))
    # Sample covariance entries have standard error ≈ √((S_ii S_jj + S_ij²)/n).
    se = ((COV.diag()[:, None] * COV.diag()[None, :] + COV**2) / n).sqrt()
    assert torch.all((torch.cov(x.T) - COV).abs() < 5 * se + 2e-3)


def test_wrong_model_fails_the_gaussian_check():
    """The check above can fail: a denoiser for another covariance is caught."""
    s, n = NoiseSchedule.linear(200), 20_000
    g = torch.Generator().manual_seed(3)
    wrong = GaussianDenoiser(MEAN, 1.3 * COV)
    x = ddpm_ancestral(
        wrong, s, torch.randn(n, 3, generator=g, dtype=torch.float64), generator=g
    ).samples
    assert (torch.cov(x.T) - COV).abs().max() > 0.05


def test_no_noise_at_the_last_step_and_trajectory_is_recorded():
    s = NoiseSchedule.linear(60)
    den = GaussianDenoiser(MEAN, COV)
    x_T = torch.randn(8, 3, dtype=torch.float64)
    out = ddpm_ancestral(
        den, s, x_T, generator=torch.Generator().manual_seed(0), record_trajectory=True
    )
    assert len(out.trajectory) == s.num_steps + 1
    assert torch.equal(out.trajectory[0], x_T) and torch.equal(out.trajectory[-1], out.samples)
    # The last step is deterministic: the same x_1 gives the same x_0 under different generators.
    x1 = out.trajectory[-2]
    last = torch.full((8,), 0)
    from ddpmkit.core.forward import posterior_mean

    x0_hat = den(x1 / s.sqrt_alpha_bar[0].item(), s.sigmas[0])
    assert torch.allclose(out.samples, posterior_mean(s, x0_hat, x1, last))


def test_clipping_keeps_x0_hat_in_range():
    s = NoiseSchedule.linear(60)
    far = ClippedDenoiser(GaussianDenoiser(torch.full((3,), 5.0, dtype=torch.float64), COV))
    x_T = torch.randn(16, 3, dtype=torch.float64)
    out = ddpm_ancestral(far, s, x_T, generator=torch.Generator().manual_seed(0))
    assert out.samples.max() <= 1.0 + 1e-9


def test_per_sample_seeds_make_samples_independent_of_batch_size():
    s = NoiseSchedule.linear(40)
    den = GaussianDenoiser(MEAN, COV)

    def draw(seeds):
        g = PerSampleGenerator(seeds)
        x_T = g.randn((len(seeds), 3), torch.float64, torch.device("cpu"))
        return ddpm_ancestral(den, s, x_T, generator=g).samples

    whole = draw(range(10))
    parts = torch.cat([draw(range(0, 3)), draw(range(3, 10))])
    # Equal up to the summation order of batched matrix products.
    assert torch.allclose(whole, parts, rtol=0, atol=1e-12)
    assert not torch.allclose(draw(range(10)), draw(range(1, 11)))
