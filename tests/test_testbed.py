"""Exactness testbeds: closed-form denoisers against Tweedie's formula, and the sample metrics."""

import math

import pytest
import torch
from torch.distributions import MultivariateNormal

from ddpmkit import GaussianDenoiser, NoiseSchedule, ddpm_ancestral
from ddpmkit.evaluation.metrics import mmd_rbf, sliced_wasserstein
from ddpmkit.evaluation.testbed import (
    TESTBEDS,
    GaussianMixture,
    GaussianMixtureDenoiser,
    gaussian,
    mixture,
    sharp_mixture,
)

SIGMAS = [1e-3, 0.05, 0.3, 1.0, 5.0, 200.0]


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def random_mixture(num_components: int = 4, dim: int = 3, seed: int = 0) -> GaussianMixture:
    g = seeded(seed)
    return GaussianMixture(
        torch.rand(num_components, generator=g, dtype=torch.float64) + 0.2,
        torch.randn(num_components, dim, generator=g, dtype=torch.float64),
        0.05 + 0.3 * torch.rand(num_components, generator=g, dtype=torch.float64),
    )


def noisy_points(dist, sigma: float, n: int = 64, seed: int = 1) -> torch.Tensor:
    g = seeded(seed)
    return dist.sample(n, g) + sigma * torch.randn(n, dist.dim, generator=g, dtype=torch.float64)


def tweedie(dist, x: torch.Tensor, sigma: float) -> torch.Tensor:
    """x + σ²∇ log p_σ(x), the gradient by autograd of the closed-form log-density."""
    x = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(dist.log_density(x, sigma).sum(), x)
    return x.detach() + sigma**2 * grad


@pytest.mark.parametrize("sigma", [0.01, 0.2, 1.0, 7.0, 100.0])
@pytest.mark.parametrize("make", [random_mixture, sharp_mixture, lambda: gaussian(5)])
def test_denoiser_equals_tweedie_formula(make, sigma):
    dist = make()
    x = noisy_points(dist, sigma)
    expected = tweedie(dist, x, sigma)
    assert torch.allclose(
        dist.denoiser()(x, torch.tensor(sigma, dtype=torch.float64)), expected, rtol=1e-9, atol=1e-9
    )


def test_mixture_log_density_equals_literal_sum_of_normals():
    dist = random_mixture()
    x, sigma = noisy_points(dist, 0.4), 0.4
    eye = torch.eye(dist.dim, dtype=torch.float64)
    terms = [
        w.log() + MultivariateNormal(m, (s**2 + sigma**2) * eye).log_prob(x)
        for w, m, s in zip(dist.weights, dist.means, dist.stds, strict=True)
    ]
    expected = torch.logsumexp(torch.stack(terms, dim=1), dim=1)
    assert torch.allclose(dist.log_density(x, sigma), expected, rtol=1e-12)


def test_gaussian_log_density_equals_multivariate_normal():
    dist = gaussian(4)
    x, sigma = noisy_points(dist, 0.7), 0.7
    reference = MultivariateNormal(
        dist.mean, dist.cov + sigma**2 * torch.eye(4, dtype=torch.float64)
    )
    assert torch.allclose(dist.log_density(x, sigma), reference.log_prob(x), rtol=1e-12)


@pytest.mark.parametrize("sigma", SIGMAS)
def test_single_component_mixture_equals_gaussian_denoiser(sigma):
    mean = torch.tensor([[0.3, -1.2, 2.0]], dtype=torch.float64)
    dist = GaussianMixture(torch.ones(1), mean, torch.tensor([0.4]))
    exact = GaussianDenoiser(mean[0], 0.16 * torch.eye(3, dtype=torch.float64))
    x = noisy_points(dist, sigma)
    assert torch.allclose(GaussianMixtureDenoiser(dist)(x, sigma), exact(x, sigma), atol=1e-12)


@pytest.mark.parametrize("name", sorted(TESTBEDS))
def test_denoisers_finite_from_tiny_to_huge_sigma(name):
    dist = TESTBEDS[name]()
    x = torch.cat([noisy_points(dist, s, n=32) for s in SIGMAS])  # every noise level's typical x
    x = torch.cat([x, torch.full((2, dist.dim), 1e3, dtype=torch.float64)])  # and far outliers
    denoiser = dist.denoiser()
    for sigma in SIGMAS:
        x0_hat = denoiser(x, torch.full((len(x),), sigma, dtype=torch.float64))
        assert torch.isfinite(x0_hat).all() and torch.isfinite(dist.log_density(x, sigma)).all()


def test_sharp_denoiser_snaps_to_mode_at_small_sigma_and_to_mean_at_large():
    dist = sharp_mixture()
    x = torch.tensor([[0.49, 0.02]], dtype=torch.float64)  # next to the mode at (0.5, 0)
    assert torch.allclose(dist.denoiser()(x, 1e-3), x, atol=1e-5)
    data_mean = dist.weights @ dist.means
    assert torch.allclose(dist.denoiser()(x, 1e4), data_mean[None], atol=1e-6)


def test_per_sample_sigma_matches_one_sigma_at_a_time():
    dist = random_mixture()
    x = noisy_points(dist, 1.0, n=4)
    sigmas = torch.tensor([0.01, 0.3, 2.0, 50.0], dtype=torch.float64)
    rows = [dist.denoiser()(x[i : i + 1], sigmas[i]) for i in range(4)]
    # Up to rounding in other batch shapes: log-joints off by 2 ulp move D by up to 1e-14 here.
    assert torch.allclose(dist.denoiser()(x, sigmas), torch.cat(rows), rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", sorted(TESTBEDS))
def test_sample_is_seeded_and_has_the_distribution_moments(name):
    dist = TESTBEDS[name]()
    a, b = dist.sample(20000, seeded(5)), dist.sample(20000, seeded(5))
    assert a.shape == (20000, dist.dim) and a.dtype == torch.float64 and torch.equal(a, b)
    mean = dist.weights @ dist.means if isinstance(dist, GaussianMixture) else dist.mean
    assert (a.mean(0) - mean).abs().max() < 0.05


def test_named_mixtures_are_sharp_and_about_unit_scale():
    for dist in (sharp_mixture(), mixture(2), mixture(8), mixture(32)):
        assert 8 <= dist.num_components <= 25
        assert float(dist.stds.min()) >= 0.05 - 1e-12 and float(dist.stds.max()) <= 0.15
        assert 0.3 < float(dist.sample(5000, seeded(0)).std(0).mean()) < 1.5


def test_invalid_mixture_rejected():
    with pytest.raises(ValueError, match="stds > 0"):
        GaussianMixture(torch.ones(2), torch.zeros(2, 3), torch.tensor([0.1, 0.0]))
    with pytest.raises(ValueError, match="expected weights"):
        GaussianMixture(torch.ones(3), torch.zeros(2, 3), torch.ones(2))


def test_exact_denoiser_drives_ancestral_sampling_to_the_data():
    dist, schedule = sharp_mixture(), NoiseSchedule.linear(200)
    x_T = torch.randn(2000, 2, generator=seeded(0), dtype=torch.float64)
    out = ddpm_ancestral(dist.denoiser(), schedule, x_T, generator=seeded(1)).samples
    reference, other = dist.sample(2000, seeded(2)), dist.sample(2000, seeded(3))
    floor = sliced_wasserstein(other, reference, generator=seeded(4))
    assert sliced_wasserstein(out, reference, generator=seeded(4)) < 2.0 * floor


# --- metrics -------------------------------------------------------------------------------


def test_sliced_wasserstein_small_for_same_law_and_grows_when_shifted_or_scaled():
    dist = sharp_mixture()
    a, b = dist.sample(3000, seeded(0)), dist.sample(3000, seeded(1))
    floor = sliced_wasserstein(a, b, generator=seeded(9))
    assert floor < 0.03
    shifted = sliced_wasserstein(a, b + 0.1, generator=seeded(9))
    scaled = sliced_wasserstein(a, 1.1 * b, generator=seeded(9))
    assert shifted > 3 * floor and scaled > 3 * floor
    assert sliced_wasserstein(a, b + 0.3, generator=seeded(9)) > shifted


def test_sliced_wasserstein_of_a_shift_is_its_length_over_root_dim():
    """SW₂(a, a + c)² = E_u[(uᵀc)²] = ‖c‖²/D for u uniform on the sphere."""
    a = torch.randn(500, 3, generator=seeded(0), dtype=torch.float64)
    c = torch.tensor([0.3, -0.4, 1.2], dtype=torch.float64)
    value = sliced_wasserstein(a, a + c, num_projections=20000, generator=seeded(1))
    assert value == pytest.approx(float(c.norm()) / math.sqrt(3), rel=0.02)


def test_sliced_wasserstein_exact_for_unequal_sizes_and_deterministic():
    a = torch.randn(300, 4, generator=seeded(0), dtype=torch.float64)
    assert sliced_wasserstein(a, a.repeat(3, 1), generator=seeded(1)) == pytest.approx(0, abs=1e-12)
    b = torch.randn(200, 4, generator=seeded(2), dtype=torch.float64)
    first = sliced_wasserstein(a, b, generator=seeded(3))
    assert first == sliced_wasserstein(a, b, generator=seeded(3)) > 0
    # 1-D, N=2 vs M=1: W₂² = ½(0 - 1)² + ½(2 - 1)² = 1 along either direction.
    one_d = sliced_wasserstein(torch.tensor([[0.0], [2.0]]), torch.tensor([[1.0]]))
    assert one_d == pytest.approx(1.0)


def test_mmd_near_zero_for_same_law_and_grows_when_shifted_or_scaled():
    dist = sharp_mixture()
    a, b = dist.sample(1500, seeded(0)), dist.sample(1500, seeded(1))
    bandwidths = (0.05, 0.2, 1.0)
    same = mmd_rbf(a, b, bandwidths)
    shifted = mmd_rbf(a, b + 0.1, bandwidths)
    assert abs(same) < 0.1 * shifted
    assert mmd_rbf(a, 1.1 * b, bandwidths) > 5 * abs(same)
    assert mmd_rbf(a, b) == pytest.approx(mmd_rbf(b, a))


def test_mmd_chunking_and_unbiased_formula_match_a_literal_transcription():
    a = torch.randn(30, 2, generator=seeded(0), dtype=torch.float64)
    b = torch.randn(20, 2, generator=seeded(1), dtype=torch.float64) + 0.5
    h = (0.5, 2.0)

    def k(x, y):
        d2 = torch.cdist(x, y) ** 2
        return sum(torch.exp(-d2 / (2 * s * s)) for s in h)

    kaa, kbb = k(a, a), k(b, b)
    expected = (
        (kaa.sum() - kaa.diag().sum()) / (30 * 29)
        + (kbb.sum() - kbb.diag().sum()) / (20 * 19)
        - 2 * k(a, b).mean()
    )
    assert mmd_rbf(a, b, h, chunk_size=7) == pytest.approx(float(expected), rel=1e-9)
