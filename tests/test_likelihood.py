"""The likelihood: Gaussian KL and decoder, the variational bound (eq. 5), the ODE likelihood."""

import math

import pytest
import torch
from scipy.stats import norm

from ddpmkit import (
    NetworkDenoiser,
    NoiseSchedule,
    UNet,
    UNetConfig,
    discretized_gaussian_log_likelihood,
    eps_from_x0,
    normal_kl,
    ode_bits_per_dim,
    ode_log_likelihood,
    variational_bound,
)
from ddpmkit.core.parameterization import reverse_mean_from_eps
from ddpmkit.data.arrays import ArrayDataset
from ddpmkit.evaluation.testbed import Gaussian, gaussian
from ddpmkit.likelihood import (
    dequantize,
    dequantized_bits_per_dim,
    gaussian_log_density,
    sampled_vlb_estimate,
    schedule_log_variance,
    vlb_term,
)
from ddpmkit.likelihood.report import nll_values

LEVELS = torch.linspace(-1.0, 1.0, 256, dtype=torch.float64)  # 8-bit data: k/127.5 - 1


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --- Gaussian building blocks --------------------------------------------------------------


def test_normal_kl_matches_monte_carlo():
    g = _gen(0)
    mean1, mean2 = torch.randn(4, generator=g, dtype=torch.float64).unbind(0)[:2]
    for logvar1, logvar2 in [(0.0, 0.0), (-1.0, 0.5), (1.2, -0.7)]:
        x = mean1 + math.exp(0.5 * logvar1) * torch.randn(400_000, generator=g, dtype=torch.float64)
        log_ratio = gaussian_log_density(x, mean1, torch.tensor(0.5 * logvar1)) - (
            gaussian_log_density(x, mean2, torch.tensor(0.5 * logvar2))
        )
        closed = normal_kl(mean1, logvar1, mean2, logvar2)
        standard_error = log_ratio.std() / math.sqrt(len(x))
        assert abs(log_ratio.mean() - closed) < 4 * standard_error + 1e-12
    assert normal_kl(torch.tensor(0.3), 0.2, 0.3, 0.2) == 0.0


@pytest.mark.parametrize("mean", [-1.3, -1.0, -0.2, 0.0, 0.517, 1.0, 1.8])
@pytest.mark.parametrize("scale", [1e-4, 1e-2, 0.3, 1.0, 5.0])
def test_discretized_gaussian_sums_to_one_over_the_256_bins(mean, scale):
    log_probs = discretized_gaussian_log_likelihood(
        LEVELS, torch.tensor(mean, dtype=torch.float64), torch.tensor(math.log(scale))
    )
    assert torch.isfinite(log_probs).all()
    assert log_probs.exp().sum().item() == pytest.approx(1.0, abs=1e-12)
    # float32 inputs: the same probabilities (computed in float64 inside), returned as float32
    log_probs32 = discretized_gaussian_log_likelihood(
        LEVELS.float(), torch.tensor(mean), torch.tensor(math.log(scale), dtype=torch.float32)
    )
    assert log_probs32.dtype == torch.float32
    assert log_probs32.double().exp().sum().item() == pytest.approx(1.0, abs=1e-5)


def test_discretized_gaussian_is_the_cdf_difference_and_stable_in_the_tails():
    mean, scale = torch.tensor(0.1, dtype=torch.float64), 0.05
    log_scale = torch.tensor(math.log(scale), dtype=torch.float64)
    log_probs = discretized_gaussian_log_likelihood(LEVELS, mean, log_scale)
    upper, lower = (LEVELS + 1 / 255 - 0.1) / scale, (LEVELS - 1 / 255 - 0.1) / scale
    inner = slice(1, 255)
    left_tail = norm.cdf(upper.numpy()) - norm.cdf(lower.numpy())
    right_tail = norm.sf(lower.numpy()) - norm.sf(upper.numpy())  # accurate where lower > 0
    expected = torch.from_numpy(left_tail).where(lower <= 0, torch.from_numpy(right_tail))
    ok = expected[inner] > 1e-300  # where scipy's difference is representable
    assert torch.allclose(log_probs[inner][ok], expected[inner][ok].log(), rtol=1e-9)
    assert log_probs[0].item() == pytest.approx(norm.logcdf(upper[0].item()), rel=1e-12)
    assert log_probs[-1].item() == pytest.approx(norm.logsf(lower[-1].item()), rel=1e-12)
    # far tails on both sides: finite, and equal to the mirrored one-sided tail probability
    far = discretized_gaussian_log_likelihood(
        torch.tensor([-0.2, 0.6]), torch.tensor([0.6, -0.2]), torch.tensor([-7.0, -7.0])
    )
    assert torch.isfinite(far).all() and far[0] == pytest.approx(far[1].item(), rel=1e-9)
    assert far[0] < -3e5  # z ≈ -877: log Φ ≈ -z²/2


def test_discretized_gaussian_with_fewer_levels_sums_to_one():
    levels = torch.linspace(-1.0, 1.0, 17, dtype=torch.float64)
    log_probs = discretized_gaussian_log_likelihood(
        levels, torch.tensor(0.3, dtype=torch.float64), torch.tensor(-1.5), num_levels=17
    )
    assert log_probs.exp().sum().item() == pytest.approx(1.0, abs=1e-12)


# --- the variational bound ------------------------------------------------------------------


def _expected_bound_nats(data: Gaussian, schedule: NoiseSchedule, variance: str) -> float:
    """E over x_0 and every x_t of eq. 5 for Gaussian data, the exact denoiser and a continuous
    Gaussian decoder, in closed form (eigenbasis of S; Var[x_0|x] = λσ²/(λ + σ²))."""
    lam = data.eigenvalues
    log_var = {"beta": schedule.betas.log(), "beta_tilde": schedule.posterior_log_variance_clipped}
    lv_p = log_var[variance]
    lv_q = schedule.posterior_variance.clamp_min(1e-300).log()
    sigma2 = schedule.sigmas**2
    posterior_var = (lam[None, :] * sigma2[:, None] / (lam[None, :] + sigma2[:, None])).sum(1)
    kl = 0.5 * data.dim * (lv_p - lv_q + (lv_q - lv_p).exp() - 1)
    kl = kl + 0.5 * schedule.posterior_mean_coef_x0**2 * posterior_var * (-lv_p).exp()
    decoder = 0.5 * (
        data.dim * (math.log(2 * math.pi) + lv_p[0]) + posterior_var[0] / lv_p[0].exp()
    )
    a_T = schedule.alpha_bar[-1]
    second_moment = (data.mean**2).sum() + lam.sum()
    prior = 0.5 * (-data.dim * ((1 - a_T).log() - (1 - a_T) + 1) + a_T * second_moment)
    return float(prior + decoder + kl[1:].sum())


def test_bound_exceeds_the_gaussian_nll_and_approaches_it_as_t_grows():
    data = gaussian(8)
    x0 = data.sample(2000, _gen(0))
    nll = -data.log_density(x0, 0.0)  # (B,) the data's exact negative log density
    entropy = 0.5 * (data.eigenvalues * 2 * math.pi * math.e).log().sum().item()
    gaps, expected_gaps = [], []
    for num_steps in (50, 200, 1000):
        schedule = NoiseSchedule.linear(num_steps)
        bound = variational_bound(
            data.denoiser(),
            schedule,
            x0,
            schedule_log_variance(schedule, "beta"),
            generator=_gen(1),
            clip=None,
            decoder=gaussian_log_density,
        )
        gap = bound.total_nats - nll
        standard_error = gap.std().item() / math.sqrt(len(gap))
        expected = _expected_bound_nats(data, schedule, "beta")
        bound_error = bound.total_nats.std().item() / math.sqrt(len(gap))
        assert abs(bound.total_nats.mean().item() - expected) < 4 * bound_error
        assert gap.mean().item() > -3 * standard_error
        gaps.append(gap.mean().item())
        expected_gaps.append(expected - entropy)
    assert expected_gaps[0] > expected_gaps[1] > expected_gaps[2] > 0
    assert gaps[0] > gaps[1] + 0.5 and gaps[1] > gaps[2] + 0.2
    assert expected_gaps[2] < 0.15  # nats over 8 dimensions at T = 1000 (0.103)


def test_beta_tilde_bound_matches_its_closed_form():
    data = gaussian(4, seed=1)
    schedule = NoiseSchedule.cosine(30)
    x0 = data.sample(3000, _gen(2))
    bound = variational_bound(
        data.denoiser(),
        schedule,
        x0,
        schedule_log_variance(schedule, "beta_tilde"),
        generator=_gen(3),
        clip=None,
        decoder=gaussian_log_density,
    )
    expected = _expected_bound_nats(data, schedule, "beta_tilde")
    standard_error = bound.total_nats.std().item() / math.sqrt(len(x0))
    assert abs(bound.total_nats.mean().item() - expected) < 4 * standard_error


def test_breakdown_sums_to_the_total_and_rows_match_vlb_term():
    data = gaussian(3, seed=2)
    schedule = NoiseSchedule.cosine(12)
    x0 = data.sample(5, _gen(4))
    variance = schedule_log_variance(schedule, "beta_tilde")
    options = dict(clip=None, decoder=gaussian_log_density)
    bound = variational_bound(data.denoiser(), schedule, x0, variance, generator=_gen(5), **options)
    assert bound.total_bpd.shape == (5,) and bound.terms_bpd.shape == (12,)
    total = bound.terms_bpd.sum() + bound.prior_bpd.mean()
    assert total.item() == pytest.approx(bound.mean_bpd.item(), rel=1e-12)
    per_sample = bound.sample_terms_bpd.sum(1) + bound.prior_bpd
    assert torch.allclose(per_sample, bound.total_bpd, rtol=1e-12)
    chunked = variational_bound(
        data.denoiser(), schedule, x0, variance, generator=_gen(5), max_batch=7, **options
    )
    # Equal up to rounding: the denoiser's matrix products see other batch sizes, which CPU
    # kernels may sum in another order (x̂_0 off by 2 ulp moves a term by 8e-15 relative).
    assert torch.allclose(chunked.sample_terms_bpd, bound.sample_terms_bpd, rtol=1e-12, atol=0)
    g = _gen(5)  # row t's noise is the t-th draw for the whole batch
    for t in range(12):
        noise = torch.randn(x0.shape, generator=g, dtype=x0.dtype)
        rows = torch.full((5,), t)
        term = vlb_term(data.denoiser(), schedule, x0, rows, noise, variance, **options)
        assert torch.allclose(term, bound.sample_terms_bpd[:, t], rtol=1e-12)


def test_vlb_term_is_the_kl_to_the_eq_11_reverse_step():
    """Literal transcription: KL(q(x_{t-1}|x_t, x_0) ‖ N(μ_θ of eq. 11, β_t)) with ε̂ from x̂_0."""
    schedule = NoiseSchedule.linear(100)
    denoiser = Gaussian(torch.full((6,), 0.2), 0.3 * torch.eye(6)).denoiser()  # a wrong model
    x0 = torch.rand(4, 6, generator=_gen(6), dtype=torch.float64) * 2 - 1
    noise = torch.randn(4, 6, generator=_gen(7), dtype=torch.float64)
    t = torch.tensor([1, 17, 50, 99])
    term = vlb_term(
        denoiser, schedule, x0, t, noise, schedule_log_variance(schedule, "beta"), clip=None
    )
    a, a_bar = schedule.alphas[t, None], schedule.alpha_bar[t, None]
    x_t = a_bar.sqrt() * x0 + (1 - a_bar).sqrt() * noise
    x0_hat = denoiser(x_t / a_bar.sqrt(), schedule.sigmas[t])
    mu_theta = reverse_mean_from_eps(x_t, eps_from_x0(x_t, x0_hat, a_bar), a, a_bar)
    a_bar_prev = schedule.alpha_bar_prev[t, None]
    beta = 1 - a
    mu_q = (a_bar_prev.sqrt() * beta * x0 + a.sqrt() * (1 - a_bar_prev) * x_t) / (1 - a_bar)
    var_q = beta * (1 - a_bar_prev) / (1 - a_bar)
    kl = 0.5 * (beta.log() - var_q.log() + var_q / beta + (mu_q - mu_theta) ** 2 / beta - 1)
    assert torch.allclose(term, kl.sum(1) / (6 * math.log(2)), rtol=1e-9)


def test_sampled_estimate_is_unbiased():
    data = gaussian(2, seed=3)
    schedule = NoiseSchedule.cosine(10)
    x0 = data.sample(400, _gen(8))
    variance = schedule_log_variance(schedule, "beta")
    options = dict(clip=None, decoder=gaussian_log_density)
    full = variational_bound(data.denoiser(), schedule, x0, variance, generator=_gen(9), **options)
    repeated = x0.repeat(50, 1)
    estimate = sampled_vlb_estimate(
        data.denoiser(), schedule, repeated, variance, generator=_gen(10), **options
    )
    standard_error = estimate.std().item() / math.sqrt(len(estimate))
    full_error = full.total_bpd.std().item() / math.sqrt(len(x0))  # noise of the full bound's x_t
    assert abs(estimate.mean().item() - full.mean_bpd.item()) < 4 * (standard_error + full_error)


def test_bits_per_dim_of_8_bit_images_with_a_network_and_gradients():
    net = UNet(
        UNetConfig(
            in_channels=1,
            sample_size=8,
            base_channels=8,
            channel_mults=(1, 2),
            layers_per_block=1,
            attention_resolutions=(),
            dropout=0.0,
            norm_groups=4,
        )
    ).eval()
    schedule = NoiseSchedule.cosine(8)
    denoiser = NetworkDenoiser(net, schedule, "eps")
    x0 = LEVELS[torch.randint(0, 256, (3, 1, 8, 8), generator=_gen(11))].float()
    x0[0, 0, 0] = torch.tensor([-1.0, 1.0] * 4)  # both edge bins
    variance = schedule_log_variance(schedule, "beta_tilde")
    bound = variational_bound(denoiser, schedule, x0, variance, generator=_gen(12))
    assert bound.sample_terms_bpd.shape == (3, 8)
    assert (bound.sample_terms_bpd >= 0).all() and (bound.prior_bpd >= 0).all()  # discrete data
    terms = vlb_term(
        denoiser, schedule, x0, torch.tensor([0, 0, 5]), torch.randn_like(x0), variance
    )
    terms.sum().backward()  # decoder and KL rows, edge bins included: finite gradients
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)


# --- the probability-flow ODE likelihood ------------------------------------------------------


def test_ode_likelihood_with_exact_trace_matches_the_gaussian_density():
    data = gaussian(8)
    schedule = NoiseSchedule.linear(1000)
    x = data.sample(16, _gen(13))
    result = ode_log_likelihood(
        data.denoiser(), schedule, x, estimator="exact", rtol=1e-6, atol=1e-6
    )
    sigma_min, sigma_max = float(schedule.sigmas[0]), float(schedule.sigmas[-1])
    exact = data.log_density(x, sigma_min)
    with_exact_prior = result.delta_log_p + data.log_density(result.x_end, sigma_max)
    assert (with_exact_prior - exact).abs().max() < 1e-3  # ODE integration error only
    assert (result.log_likelihood - exact).abs().max() < 0.05  # + the N(0, (1+σ²)I) prior's
    assert result.nfe > 10


@pytest.mark.parametrize("estimator", ["rademacher", "gaussian"])
def test_ode_hutchinson_error_matches_its_predicted_spread(estimator):
    data = gaussian(8)
    schedule = NoiseSchedule.linear(1000)
    sigma_min, sigma_max = float(schedule.sigmas[0]), float(schedule.sigmas[-1])
    x = data.sample(200, _gen(14))
    result = ode_log_likelihood(
        data.denoiser(), schedule, x, estimator=estimator, generator=_gen(15), rtol=1e-5, atol=1e-5
    )
    error = result.delta_log_p + data.log_density(result.x_end, sigma_max)
    error = error - data.log_density(x, sigma_min)
    # ∂D/∂x = U diag(λ/(λ+σ²)) Uᵀ, so the probe meets M = ∫ ∂D/∂x d log σ, in closed form;
    # the error is vᵀMv - tr M, of variance 2Σ_{i≠j} M_ij² (Rademacher) or 2‖M‖²_F (Gaussian).
    lam, u = data.eigenvalues, data.eigenvectors
    m = 0.5 * ((lam + sigma_min**2) * sigma_max**2 / (sigma_min**2 * (lam + sigma_max**2))).log()
    matrix = u @ torch.diag(m) @ u.T
    squares = matrix**2
    if estimator == "rademacher":
        squares = squares - torch.diag(torch.diag(squares))
    predicted_std = (2 * squares.sum()).sqrt().item()
    assert abs(error.mean().item()) < 4 * predicted_std / math.sqrt(len(x))
    assert 0.75 < error.std().item() / predicted_std < 1.33


def test_dequantization_constant_is_exact_for_a_piecewise_uniform_density():
    # a density uniform over each bin [x - 1/255, x + 1/255) with mass P: p = P/(2/255)^D
    log_mass = torch.tensor([-3.0, -40.0], dtype=torch.float64)
    dims = 5
    log_density = log_mass - dims * math.log(2 / 255)
    bits = dequantized_bits_per_dim(log_density, dims)
    assert torch.allclose(bits, -log_mass / (dims * math.log(2)), rtol=1e-12)
    x = LEVELS.repeat(40)
    noisy = dequantize(x, _gen(16))
    assert ((noisy - x).abs() <= 1 / 255).all() and abs((noisy - x).mean()) < 1e-4
    assert torch.equal(noisy, dequantize(x, _gen(16)))


def test_ode_bits_per_dim_runs_on_discrete_data():
    data = gaussian(4, seed=4)
    schedule = NoiseSchedule.linear(1000)
    x = LEVELS[torch.randint(60, 200, (6, 4), generator=_gen(17))]
    bits, result = ode_bits_per_dim(data.denoiser(), schedule, x, generator=_gen(18), rtol=1e-4)
    expected = dequantized_bits_per_dim(result.log_likelihood, 4)
    assert bits.shape == (6,) and torch.equal(bits, expected) and torch.isfinite(bits).all()


def test_continuous_data_get_the_odes_density_without_dequantization():
    """nll_values(continuous=True), a latent model's path: −log₂ p(x)/D of the ODE on the items
    themselves, whose mean meets the exact Gaussian density within four standard errors of the
    Hutchinson noise (plus the N(0, (1+σ²)I) prior's ~0.05 nats); the bound refuses such data."""
    data = gaussian(4, seed=4)
    schedule = NoiseSchedule.linear(1000)
    x = data.sample(64, _gen(19)).float()
    dataset = ArrayDataset(x, None, "raw")
    values = nll_values(
        data.denoiser(), schedule, dataset, "ode", batch_size=64, batches=range(1),
        num_items=64, continuous=True,
    )  # fmt: skip
    exact = -data.log_density(x.double(), float(schedule.sigmas[0])) / (4 * math.log(2))
    error = values.bits - exact
    assert abs(float(error.mean())) < 4 * float(error.std()) / 8 + 0.05 / (4 * math.log(2))
    with pytest.raises(ValueError, match="ode"):
        nll_values(
            data.denoiser(), schedule, dataset, "vlb", batch_size=64, batches=range(1),
            num_items=64, continuous=True,
        )  # fmt: skip


def test_ode_likelihood_on_image_shaped_batches():
    """x_0 ~ N(0, s²I) as (B, 1, 2, 2) images: D(x; σ) = x·s²/(s² + σ²), exact trace."""
    s2 = 0.2

    def denoiser(x, sigma, class_labels=None):
        return x * s2 / (s2 + sigma.reshape(-1, 1, 1, 1) ** 2)

    schedule = NoiseSchedule.linear(1000)
    sigma_min, sigma_max = float(schedule.sigmas[0]), float(schedule.sigmas[-1])
    x = s2**0.5 * torch.randn(3, 1, 2, 2, generator=_gen(19), dtype=torch.float64)
    result = ode_log_likelihood(denoiser, schedule, x, estimator="exact", rtol=1e-7, atol=1e-7)
    assert result.x_end.shape == x.shape
    normal = torch.distributions.Normal(0.0, 1.0)

    def log_density(y, sigma):
        scale = (s2 + sigma**2) ** 0.5
        return (normal.log_prob(y / scale) - math.log(scale)).flatten(1).sum(1)

    ode = result.delta_log_p + log_density(result.x_end, sigma_max)
    assert torch.allclose(ode, log_density(x, sigma_min), atol=1e-4)
