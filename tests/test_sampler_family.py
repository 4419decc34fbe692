"""Every sampler: its contract, the identities between them, and convergence on Gaussian data."""

import math

import pytest
import torch

from ddpmkit import (
    SAMPLERS,
    DynamicThresholding,
    GaussianDenoiser,
    NoiseSchedule,
    PerSampleGenerator,
    ancestral,
    build_grid,
    ddim,
    ddim_invert,
    edm_heun,
    karras_sigmas,
    ode_euler,
    sample,
)
from ddpmkit.core.grids import respaced_timesteps

SCHEDULE = NoiseSchedule.linear(1000)
MEAN = torch.tensor([0.5, -0.3], dtype=torch.float64)
_A = torch.tensor([[0.6, 0.0], [0.3, 0.4]], dtype=torch.float64)
COV = _A @ _A.T
EXACT = GaussianDenoiser(MEAN, COV)


def _noise(n, seed=0):
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_contract_shape_determinism_nfe_trajectory(name):
    x_T = _noise(16)
    run = lambda: sample(name, EXACT, SCHEDULE, x_T, 8, generator=torch.Generator().manual_seed(1),  # noqa: E731
                         record_trajectory=True)  # fmt: skip
    first, second = run(), run()
    assert first.samples.shape == x_T.shape and first.samples.dtype == x_T.dtype
    assert torch.equal(first.samples, second.samples)
    assert torch.isfinite(first.samples).all()
    spec = SAMPLERS[name]
    if not spec.adaptive:
        assert first.nfe == spec.nfe(8, langevin_steps=5)
        assert spec.steps_for_nfe(first.nfe, langevin_steps=5) == 8
    assert torch.allclose(first.trajectory[0], x_T)  # recorded in VP coordinates, x_T first
    assert torch.equal(first.trajectory[-1], first.samples)


@pytest.mark.parametrize("name", ["ancestral", "ddim", "pc", "edm-heun"])
def test_samples_depend_only_on_their_own_seed(name):
    def draw(seeds):
        g = PerSampleGenerator(seeds)
        x_T = g.randn((len(seeds), 2), torch.float64, torch.device("cpu"))
        return sample(name, EXACT, SCHEDULE, x_T, 10, generator=g, churn=5.0).samples if name == "edm-heun" \
            else sample(name, EXACT, SCHEDULE, x_T, 10, generator=g).samples  # fmt: skip

    assert torch.allclose(
        draw(range(6)), torch.cat([draw(range(2)), draw(range(2, 6))]), atol=1e-12
    )


def test_unknown_sampler_and_option_are_named():
    with pytest.raises(ValueError, match="unknown sampler 'ddpm'"):
        sample("ddpm", EXACT, SCHEDULE, _noise(2), 5)
    with pytest.raises(ValueError, match="sampler 'ddim' takes no option churn; its options: eta"):
        sample("ddim", EXACT, SCHEDULE, _noise(2), 5, churn=1.0)


def test_ddim_eta0_is_euler_on_the_probability_flow_ode():
    sigmas = build_grid(SCHEDULE, "linspace", 25)
    x_T = _noise(64)
    assert torch.allclose(
        ddim(EXACT, sigmas, x_T).samples, ode_euler(EXACT, sigmas, x_T).samples, atol=1e-10
    )


def test_ddim_eta1_is_ancestral_sampling_on_the_same_steps():
    sigmas = build_grid(SCHEDULE, "trailing", 30)
    x_T = _noise(64)
    a = ddim(EXACT, sigmas, x_T, eta=1.0, generator=torch.Generator().manual_seed(5)).samples
    b = ancestral(EXACT, sigmas, x_T, generator=torch.Generator().manual_seed(5)).samples
    assert torch.allclose(a, b, atol=1e-10)


def test_heun_without_churn_is_deterministic_and_with_churn_is_not():
    sigmas = build_grid(SCHEDULE, "karras", 10)
    x_T = _noise(8)
    plain = [
        edm_heun(EXACT, sigmas, x_T, generator=torch.Generator().manual_seed(s)).samples
        for s in (0, 1)
    ]
    churned = [edm_heun(EXACT, sigmas, x_T, churn=10.0, generator=torch.Generator().manual_seed(s)).samples
               for s in (0, 1)]  # fmt: skip
    assert torch.equal(plain[0], plain[1]) and not torch.allclose(churned[0], churned[1])


@pytest.mark.parametrize(("steps", "tolerance"), [(50, 0.2), (200, 0.05), (1000, 0.01)])
def test_ddim_inversion_reconstructs_its_input(steps, tolerance):
    """Encoding then decoding returns the input, with a first-order error shrinking as 1/steps."""
    sigmas = build_grid(SCHEDULE, "linspace", steps)
    x0 = (
        MEAN
        + torch.randn(32, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64) @ _A.T
    )
    latent = ddim_invert(EXACT, sigmas, x0)
    assert latent.std() > 0.5  # an actual encoding towards N(0, I), not the input itself
    again = ddim(EXACT, sigmas, latent).samples
    assert (again - x0).abs().max() < tolerance


# (sampler, steps, tolerance on the covariance, beyond Monte Carlo's); every sampler converges.
CONVERGENCE = [
    ("ancestral", 1000, 0.01), ("ddim", 200, 0.01), ("euler-maruyama", 500, 0.01), ("pc", 200, 0.01),
    ("ode-euler", 200, 0.01), ("ode-heun", 50, 0.01), ("ode-rk45", 1, 0.01), ("dpm++2m", 50, 0.01),
    ("dpm++3m", 20, 0.01), ("edm-heun", 50, 0.01), ("langevin", 400, 0.05),
]  # fmt: skip


@pytest.mark.parametrize(("name", "steps", "tolerance"), CONVERGENCE)
def test_every_sampler_reproduces_gaussian_data(name, steps, tolerance):
    n = 8000
    out = sample(
        name, EXACT, SCHEDULE, _noise(n, 3), steps, generator=torch.Generator().manual_seed(4)
    )
    x = out.samples
    se_mean = COV.diag().sqrt() / math.sqrt(n)
    se_cov = ((COV.diag()[:, None] * COV.diag()[None, :] + COV**2) / n).sqrt()
    assert torch.all((x.mean(0) - MEAN).abs() < 5 * se_mean + 0.01)
    assert torch.all((torch.cov(x.T) - COV).abs() < 5 * se_cov + tolerance)


def test_few_steps_are_measurably_worse_than_many():
    """The convergence check can fail: 5 DDIM steps miss the covariance."""
    x = sample("ddim", EXACT, SCHEDULE, _noise(8000, 3), 5).samples
    assert (torch.cov(x.T) - COV).abs().max() > 0.05


def test_grids():
    assert respaced_timesteps(1000, 10, "linspace")[::9] == [999, 0]
    assert respaced_timesteps(1000, 10, "trailing")[0] == 999
    assert respaced_timesteps(1000, 10, "leading")[-1] == 0
    assert respaced_timesteps(1000, 1000, "linspace") == list(range(999, -1, -1))
    k = karras_sigmas(0.002, 80.0, 5, rho=7.0)
    assert k[0] == pytest.approx(80.0) and k[-2] == pytest.approx(0.002) and k[-1] == 0
    assert torch.all(k[:-2] > k[1:-1])
    log_snr = build_grid(SCHEDULE, "log_snr", 6)[:-1].log()
    assert torch.allclose(log_snr.diff(), log_snr.diff()[0].expand(5))
    uniform_t = build_grid(SCHEDULE, "uniform_t", 4)
    assert torch.allclose(uniform_t[[0, -2]], SCHEDULE.sigmas[[-1, 0]])
    with pytest.raises(ValueError, match="unknown grid"):
        build_grid(SCHEDULE, "cosine", 5)


def test_dynamic_thresholding_only_touches_saturated_predictions():
    inside = GaussianDenoiser(
        torch.zeros(2, dtype=torch.float64), 0.01 * torch.eye(2, dtype=torch.float64)
    )
    x = torch.tensor([[0.3, -0.2]], dtype=torch.float64)
    assert torch.allclose(DynamicThresholding(inside, 0.99)(x, 0.1), inside(x, 0.1))
    far = GaussianDenoiser(
        torch.full((2,), 3.0, dtype=torch.float64), 0.01 * torch.eye(2, dtype=torch.float64)
    )
    out = DynamicThresholding(far, 0.99)(torch.tensor([[3.0, 2.0]], dtype=torch.float64), 0.1)
    assert out.abs().max() <= 1.0 + 1e-12 and out[0, 0] > out[0, 1]  # rescaled, order kept


HIGH_STEPS = {
    "ancestral": 1000, "ddim": 200, "euler-maruyama": 500, "pc": 200, "ode-euler": 200,
    "ode-heun": 100, "ode-rk45": 2, "dpm++2m": 50, "dpm++3m": 50, "edm-heun": 100, "langevin": 200,
}  # fmt: skip


@pytest.fixture(scope="module")
def sharp_testbed():
    """The sharp-mode mixture, exact reference sets and the Monte-Carlo band of exact samples."""
    from ddpmkit.evaluation.metrics import sliced_wasserstein
    from ddpmkit.evaluation.testbed import sharp_mixture

    dist, n = sharp_mixture(), 3000
    refs = [dist.sample(n, torch.Generator().manual_seed(100 + i)) for i in range(3)]

    def error(x):
        g = torch.Generator().manual_seed(0)
        return sum(sliced_wasserstein(x, ref, generator=g) for ref in refs) / len(refs)

    exact = [error(dist.sample(n, torch.Generator().manual_seed(200 + i))) for i in range(6)]
    return dist, n, error, max(exact)


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_every_sampler_converges_on_the_sharp_mixture(name, sharp_testbed):
    """Error falls with more steps to within the band of exact samples (sliced Wasserstein)."""
    dist, n, error, exact_band = sharp_testbed
    x_T = _noise(n, 7)

    def err(steps):
        return error(sample(name, dist.denoiser(), SCHEDULE, x_T, steps,
                            generator=torch.Generator().manual_seed(8)).samples)  # fmt: skip

    high = err(HIGH_STEPS[name])
    assert high <= 1.25 * exact_band
    if name != "ode-rk45":
        assert err(4) > 1.5 * high


def test_a_user_list_of_training_steps_is_the_grid():
    x_T = _noise(4)
    listed = sample("ddim", EXACT, SCHEDULE, x_T, 0, timesteps=[999, 500, 100, 0])
    sigmas = torch.cat([SCHEDULE.sigmas[[999, 500, 100, 0]], torch.zeros(1, dtype=torch.float64)])
    assert listed.nfe == 4 and torch.equal(listed.samples, ddim(EXACT, sigmas, x_T).samples)


@pytest.mark.parametrize("process", ["ve", "subvp"])
def test_annealed_langevin_and_ancestral_reproduce_gaussian_data_on_other_processes(process):
    """NCSN's geometric levels (σ 0.01 … 10) and sub-VP: the same exact denoiser, sampled by
    annealed Langevin (Song & Ermon 2019, Algorithm 1) or the ancestral chain of that table."""
    from ddpmkit.config.builders import build_schedule
    from ddpmkit.config.schema import DiffusionConfig

    schedule = build_schedule(
        DiffusionConfig(process=process, sigma_max=10.0, num_steps=200)  # type: ignore[arg-type]
    )
    n = 8000
    for name, steps, tolerance in (("langevin", 200, 0.05), ("ancestral", 200, 0.02)):
        x = sample(
            name, EXACT, schedule, _noise(n, 3), steps, generator=torch.Generator().manual_seed(4)
        ).samples
        se_cov = ((COV.diag()[:, None] * COV.diag()[None, :] + COV**2) / n).sqrt()
        assert torch.all((x.mean(0) - MEAN).abs() < 5 * COV.diag().sqrt() / math.sqrt(n) + 0.01), (
            name
        )
        assert torch.all((torch.cov(x.T) - COV).abs() < 5 * se_cov + tolerance), name


@pytest.mark.parametrize(
    ("name", "options"),
    [("pc", {"corrector_steps": 0}), ("pc", {"corrector_steps": 3}), ("pc", {}),
     ("langevin", {"langevin_steps": 0}), ("langevin", {"langevin_steps": 2}), ("langevin", {})],
)  # fmt: skip
def test_the_predicted_nfe_follows_the_options_that_set_calls_per_level(name, options):
    """``Sampler.nfe`` (what plans and budgets use) equals the calls made, for every value of
    the option that sets the calls per level, 0 included."""
    exact = GaussianDenoiser(torch.zeros(2, dtype=torch.float64), torch.eye(2).double())
    schedule = NoiseSchedule.cosine(100)
    x_T = torch.randn(4, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    result = sample(name, exact, schedule, x_T, 5, **options)
    assert result.nfe == SAMPLERS[name].nfe(5, **options)


def test_the_adaptive_solver_reports_vp_states_to_its_callback():
    """Every sampler's callback sees x_t in VP coordinates, RK45's integration of the VE ODE too:
    at σ_max ≈ 157 a VE state is ~157 times larger than its x_t ~ N(0, I)."""
    seen = []
    x_T = torch.randn(64, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    sample("ode-rk45", EXACT, SCHEDULE, x_T, 4, callback=lambda _i, _n, x: seen.append(x))
    assert seen and all(float(x.std()) < 3.0 for x in seen)
