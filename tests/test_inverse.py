"""Inverse problems on a Gaussian prior N(m, S), where every posterior is known in closed form.

With the exact denoiser of N(m, S) every step of replacement, RePaint and SDEdit's ancestral
sampler is affine in the state plus independent Gaussian noise, so the law of their output is
Gaussian and ``sampler_laws`` computes it exactly; the samples must match it within Monte-Carlo
error (a check of the implementation). The distance of that law from the exact posterior is the
method's own bias. Measured on the 4-D prior below, cosine schedule, T = 100, all 100 steps:

* replacement (inpainting, 2 of 4 coordinates known): |mean error| 0.105, |cov error| 0.668
  (posterior variances 0.32 and 0.86; the unknown coordinates come out with variance ≈ 0.96,
  nearly the prior's): badly biased, as noised copies of y carry little information;
* RePaint, j = 10, r = 10: 0.029 and 0.057; not exact either (more resampling lowers the mean
  error but raises the covariance error at T = 100, where even unconditional ancestral sampling
  shrinks S by up to 0.127 in covariance, a bias that resampling repeats);
* DPS (y = A x + n, A 2×4, s = 0.1, ζ = 0.1): ‖mean error‖ 0.17 against a prior-to-posterior
  distance of 1.27, |cov error| 0.04; ζ sets the bias (0.62 at ζ = 0.05, 0.36 at ζ = 0.3);
* SDEdit with the ancestral sampler matches its exact law; against the continuous-time
  ideal law (exact reverse from t_0) it shows the ancestral sampler's discretisation bias.

None of the posterior samplers is exact here; only their agreement with their own exact law
is asserted within Monte-Carlo tolerance, their biases against measured bounds.
"""

import itertools

import pytest
import torch

from ddpmkit import (
    Downsample,
    GaussianBlur,
    GaussianDenoiser,
    Mask,
    NoiseSchedule,
    PerSampleGenerator,
    build_grid,
    ddrm,
    dps,
    inpaint_replacement,
    pigdm,
    repaint,
    sdedit,
)
from ddpmkit.core.grids import respaced_timesteps, timestep_sigmas
from ddpmkit.core.parameterization import alpha_bar_from_sigma
from ddpmkit.core.schedules import posterior_coefficients
from ddpmkit.inverse import Colorize, FunctionOperator, Linear, SpectralOperator, repaint_path
from ddpmkit.samplers.common import levels

D, N = 4, 4000
_L = 0.6 * torch.randn(D, D, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
COV = _L @ _L.T + 0.05 * torch.eye(D, dtype=torch.float64)  # correlations up to ±0.52
MEAN = torch.tensor([0.5, -0.3, 0.2, 0.1], dtype=torch.float64)
DENOISER = GaussianDenoiser(MEAN, COV)
SCHEDULE = NoiseSchedule.cosine(100)
SIGMAS = build_grid(SCHEDULE, "linspace", 100)
MASK = torch.tensor([1.0, 1.0, 0.0, 0.0], dtype=torch.float64)  # coordinates 0 and 1 known
KNOWN, UNKNOWN = MASK.bool(), ~MASK.bool()
Y = MEAN + 1.5 * COV.diag().sqrt() * MASK  # measured values 1.5 prior stds off the mean


def seeded(seed):
    return torch.Generator().manual_seed(seed)


def noise(n, seed=1):
    return torch.randn(n, D, generator=seeded(seed), dtype=torch.float64)


def gaussian_posterior(A, y, noise_std):
    """m + SAᵀ(ASAᵀ + s²I)⁻¹(y - Am) and S - SAᵀ(ASAᵀ + s²I)⁻¹AS (Gaussian conditioning)."""
    gain = COV @ A.T @ torch.linalg.inv(A @ COV @ A.T + noise_std**2 * torch.eye(len(A)))
    return MEAN + gain @ (y - A @ MEAN), COV - gain @ A @ COV


INPAINT_MEAN, INPAINT_COV = gaussian_posterior(torch.eye(D)[KNOWN].double(), Y[KNOWN], 0.0)


def sampler_laws(grid, path, mean, cov, known=None):
    """Exact mean and covariance of every state along ``path`` of grid positions, the start first.

    A step down is x' = c_x0 x̂_0 + c_xt x + √β̃ z with x̂_0 = m + K(x√(1 + σ²) - m), K = S(S + σ²I)⁻¹,
    followed, with ``known``, by replacing coordinates 0 and 1 by √ᾱ' y + √(1-ᾱ') ε; a step up
    is x' = √r x + √(1-r) ε, r = ᾱ'/ᾱ.
    """
    eye, keep = torch.eye(D, dtype=torch.float64), torch.diag(1.0 - MASK)
    laws = [(mean, cov)]
    for here, there in itertools.pairwise(path):
        sigma, sigma_next = grid[here], grid[there]
        alpha_bar, alpha_bar_next = alpha_bar_from_sigma(sigma), alpha_bar_from_sigma(sigma_next)
        if there < here:
            r = alpha_bar_next / alpha_bar
            mean, cov = r**0.5 * mean, r * cov + (1 - r) * eye
        else:
            coef_x0, coef_xt, beta_tilde = posterior_coefficients(alpha_bar, alpha_bar_next)
            gain = COV @ torch.linalg.inv(COV + sigma**2 * eye)
            step = coef_x0 * (1 + sigma**2) ** 0.5 * gain + coef_xt * eye
            mean = step @ mean + coef_x0 * (MEAN - gain @ MEAN)
            cov = step @ cov @ step.T + beta_tilde * eye
            if known is not None:
                mean = keep @ mean + alpha_bar_next**0.5 * (eye - keep) @ known
                cov = keep @ cov @ keep + (1 - alpha_bar_next) * (eye - keep)
        laws.append((mean, cov))
    return laws


def assert_moments(samples, mean, cov, z=5.0):
    """Sample mean and covariance within z standard errors of (mean, cov)."""
    n, var = len(samples), cov.diag()
    assert torch.all((samples.mean(0) - mean).abs() <= z * (var / n).sqrt())
    se = ((var[:, None] * var[None, :] + cov**2) / n).sqrt()
    assert torch.all((torch.cov(samples.T) - cov).abs() <= z * se)


def errors(mean, cov, exact_mean, exact_cov):
    """max |mean error| and max |covariance error|."""
    return (mean - exact_mean).abs().max().item(), (cov - exact_cov).abs().max().item()


INPAINTERS = {
    "replacement": (inpaint_replacement, {}),
    "repaint": (repaint, {"jump_length": 10, "resamplings": 10}),
}


def inpainting_path(name):
    """The grid positions each method visits: every level once, or RePaint's schedule."""
    steps, options = len(SIGMAS) - 1, INPAINTERS[name][1]
    return repaint_path(steps, **options) if options else list(range(steps + 1))


def inpainting_laws(name):
    start = (torch.zeros(D, dtype=torch.float64), torch.eye(D, dtype=torch.float64))
    return sampler_laws(levels(SIGMAS), inpainting_path(name), *start, known=Y)


@pytest.fixture(scope="module")
def inpainted():
    """Per method: N inpainted samples from the same x_T, and their states at 7 steps on the way."""
    runs = {}
    for name, (fn, options) in INPAINTERS.items():
        steps = len(inpainting_path(name)) - 1
        checkpoints = set(range(steps // 8, steps, steps // 8))
        states = {}

        def keep(i, n, x, states=states, checkpoints=checkpoints):
            if i in checkpoints:
                states[i] = x.clone()

        out = fn(
            DENOISER, SIGMAS, noise(N), Y.expand(N, D), MASK, generator=seeded(2), callback=keep,
            **options,
        )  # fmt: skip
        runs[name] = out, states
    return runs


def get_schedule_jump(t_T, jump_length, jump_n_sample):
    """Lugmayr et al.'s ``get_schedule_jump`` (RePaint's scheduler.py), transcribed, n_sample = 1."""
    jumps = {j: jump_n_sample - 1 for j in range(0, t_T - jump_length, jump_length)}
    t, ts = t_T, []
    while t >= 1:
        t = t - 1
        ts.append(t)
        if jumps.get(t, 0) > 0:
            jumps[t] = jumps[t] - 1
            for _ in range(jump_length):
                t = t + 1
                ts.append(t)
    ts.append(-1)
    return ts


@pytest.mark.parametrize(("steps", "jump", "r"), [(100, 10, 10), (37, 5, 3), (25, 1, 4), (9, 3, 1)])
def test_repaint_path_is_the_official_schedule(steps, jump, r):
    official = [steps - 1 - t for t in get_schedule_jump(steps, jump, r)]  # state t ↦ position
    assert repaint_path(steps, jump, r) == official


@pytest.mark.parametrize("name", INPAINTERS)
def test_inpainting_matches_its_exact_gaussian_law(inpainted, name):
    """The states at 7 steps (all coordinates) and the unknown result follow the exact law."""
    out, states = inpainted[name]
    laws = inpainting_laws(name)
    for step, x in states.items():
        assert_moments(x, *laws[step])
    mean, cov = laws[-1]
    assert_moments(out.samples[:, UNKNOWN], mean[UNKNOWN], cov[UNKNOWN][:, UNKNOWN])


@pytest.mark.parametrize("name", INPAINTERS)
def test_known_region_equals_y_exactly(inpainted, name):
    samples = inpainted[name][0].samples
    assert torch.equal(samples[:, KNOWN], Y[KNOWN].expand(N, -1))
    assert samples.isfinite().all()


def test_repaint_is_less_biased_than_replacement(inpainted):
    """Errors against the exact conditional of the unknown coordinates, by law and by samples.

    Measured (law; samples): replacement 0.105, 0.668; 0.126, 0.664 — RePaint 0.029, 0.057;
    0.022, 0.045 (max |mean error|, max |covariance error|).
    """
    exact_mean, exact_cov = INPAINT_MEAN[UNKNOWN], INPAINT_COV[UNKNOWN][:, UNKNOWN]
    measured = {}
    for name in INPAINTERS:
        mean, cov = inpainting_laws(name)[-1]
        x = inpainted[name][0].samples[:, UNKNOWN]
        measured[name] = [
            errors(mean[UNKNOWN], cov[UNKNOWN][:, UNKNOWN], exact_mean, exact_cov),
            errors(x.mean(0), torch.cov(x.T), exact_mean, exact_cov),
        ]
    pairs = zip(*measured.values(), strict=True)
    for (replace_mean, replace_cov), (repaint_mean, repaint_cov) in pairs:
        assert repaint_mean < 0.5 * replace_mean and repaint_cov < 0.2 * replace_cov
        assert repaint_mean < 0.06 and repaint_cov < 0.12
        assert replace_cov < 1.0  # biased, but bounded


def test_repaint_without_resampling_is_replacement():
    x_T, y = noise(32), Y.expand(32, D)
    plain = inpaint_replacement(DENOISER, SIGMAS, x_T, y, MASK, generator=seeded(3))
    once = repaint(DENOISER, SIGMAS, x_T, y, MASK, resamplings=1, generator=seeded(3))
    assert torch.equal(plain.samples, once.samples) and plain.nfe == once.nfe == 100


def test_repaint_counts_steps_and_records_every_level():
    steps = []
    out = repaint(
        DENOISER, SIGMAS[-21:], noise(8), Y.expand(8, D), MASK, jump_length=5, resamplings=3,
        generator=seeded(4), record_trajectory=True, callback=lambda i, n, x: steps.append((i, n)),
    )  # fmt: skip
    path = repaint_path(20, 5, 3)
    assert len(out.trajectory) == len(path) and steps[-1] == (len(path) - 1, len(path) - 1)
    assert out.nfe == sum(b > a for a, b in itertools.pairwise(path))


A_VEC = torch.tensor([[1.0, 0.5, 0.0, -0.5], [0.0, 1.0, 1.0, 0.0]], dtype=torch.float64)
NOISE_STD = 0.1
Y_VEC = A_VEC @ (MEAN + torch.tensor([1.0, -1.0, 0.5, 0.8], dtype=torch.float64)) + torch.tensor(
    [0.03, -0.05], dtype=torch.float64
)


def test_dps_moves_toward_the_exact_posterior():
    """DPS is approximate: measured ‖mean error‖ 0.17 (prior mean: 1.27 away), |cov error| 0.04."""
    exact_mean, exact_cov = gaussian_posterior(A_VEC, Y_VEC, NOISE_STD)
    out = dps(DENOISER, SIGMAS, noise(N), Y_VEC, Linear(A_VEC), step_size=0.1, generator=seeded(2))
    x = out.samples
    assert x.isfinite().all() and out.nfe == 100
    prior_distance = (MEAN - exact_mean).norm()
    assert (x.mean(0) - exact_mean).norm() < 0.25 * prior_distance  # measured 0.13 of it
    assert (torch.cov(x.T) - exact_cov).abs().max() < 0.15  # measured 0.04


H = 4
_PIXELS = torch.cartesian_prod(torch.arange(H), torch.arange(H)).double()
IMAGE_COV = torch.exp(-(torch.cdist(_PIXELS, _PIXELS) ** 2) / 4.5) + 0.01 * torch.eye(H * H)
_IMAGE_DENOISER = GaussianDenoiser(torch.zeros(H * H, dtype=torch.float64), IMAGE_COV)


def image_denoiser(x, sigma, class_labels=None):
    """The exact denoiser of a smooth Gaussian prior on 1×4×4 images, zero mean."""
    return _IMAGE_DENOISER(x.flatten(1), sigma).view_as(x)


@pytest.mark.parametrize("operator", [Downsample(2), GaussianBlur(3, 1.0)], ids=["sr", "blur"])
def test_dps_on_images_moves_toward_the_exact_posterior(operator):
    """Measured ‖mean error‖/‖posterior mean‖: 0.02 (×2 super-resolution), 0.05 (blur), ζ = 0.3."""
    basis = torch.eye(H * H, dtype=torch.float64).view(-1, 1, H, H)
    A = operator(basis).flatten(1).T  # the operator's matrix, column j = A e_j
    truth = torch.linalg.cholesky(IMAGE_COV) @ torch.randn(H * H, generator=seeded(5)).double()
    y = operator(truth.view(1, 1, H, H))
    y = y + NOISE_STD * torch.randn(y.shape, generator=seeded(6), dtype=torch.float64)
    gain = (
        IMAGE_COV @ A.T @ torch.linalg.inv(A @ IMAGE_COV @ A.T + NOISE_STD**2 * torch.eye(len(A)))
    )
    exact_mean = gain @ y.flatten()
    x_T = torch.randn(2000, 1, H, H, generator=seeded(1), dtype=torch.float64)
    x = dps(image_denoiser, SIGMAS, x_T, y, operator, step_size=0.3, generator=seeded(2)).samples
    assert (x.flatten(1).mean(0) - exact_mean).norm() < 0.15 * exact_mean.norm()


def image_prior_law(image, strength, steps):
    """The grid SDEdit walks and the exact law of its ancestral output for one input image."""
    start = round(strength * SCHEDULE.num_steps)
    grid = levels(timestep_sigmas(SCHEDULE, respaced_timesteps(start, min(steps, start))))
    alpha_bar = float(SCHEDULE.alpha_bar[start - 1])
    eye = torch.eye(D, dtype=torch.float64)
    return grid, sampler_laws(
        grid, list(range(len(grid))), alpha_bar**0.5 * image, (1 - alpha_bar) * eye
    )[-1]


@pytest.mark.parametrize(("strength", "cov_bias"), [(0.3, 0.05), (1.0, 0.35)])
def test_sdedit_matches_its_exact_gaussian_law(strength, cov_bias):
    """Ancestral SDEdit vs its exact law, and that law vs the ideal reverse from t_0.

    Against the ideal law the mean is exact (to 1e-14) and the covariance is off by the ancestral
    sampler's discretisation: measured 0.024 (30 steps from t_0 = 30) and 0.248 (50 of 100).
    """
    image = MEAN + torch.tensor([2.0, -1.0, 1.0, 0.5], dtype=torch.float64)
    out = sdedit(DENOISER, SCHEDULE, image.expand(N, D), strength, steps=50, generator=seeded(2))
    grid, (mean, cov) = image_prior_law(image, strength, 50)
    assert out.nfe == len(grid) - 1
    assert_moments(out.samples, mean, cov)
    # Ideal SDEdit: x_0 ~ p(x_0 | x_{t_0}), x_{t_0} ~ q(·|image): Gaussian conditioning at σ_0.
    gain = COV @ torch.linalg.inv(COV + grid[0] ** 2 * torch.eye(D, dtype=torch.float64))
    ideal_mean = MEAN + gain @ (image - MEAN)
    ideal_cov = COV - gain @ COV + grid[0] ** 2 * gain @ gain.T
    mean_error, cov_error = errors(mean, cov, ideal_mean, ideal_cov)
    assert mean_error < 1e-10 and cov_error < cov_bias


def test_sdedit_strength_zero_returns_the_input_and_tiny_strength_stays_close():
    image = MEAN + noise(256, seed=3)
    same = sdedit(DENOISER, SCHEDULE, image, 0.0, steps=10, generator=seeded(0))
    assert torch.equal(same.samples, image) and same.samples is not image and same.nfe == 0
    close = sdedit(DENOISER, SCHEDULE, image, 0.01, steps=10, generator=seeded(0))
    # One step from t_0 = 1: the output keeps noise of about σ_1 = 0.025 (measured rms 0.025).
    sigma_1 = float(SCHEDULE.sigmas[0])
    assert close.nfe == 1 and (close.samples - image).pow(2).mean().sqrt() < 1.5 * sigma_1


def test_sdedit_passes_options_to_the_chosen_sampler():
    image = MEAN.expand(8, D)
    out = sdedit(
        DENOISER, SCHEDULE, image, 0.5, sampler="ddim", steps=10, eta=0.0, generator=seeded(0)
    )
    assert out.nfe == 10 and out.samples.isfinite().all()
    with pytest.raises(ValueError, match="strength"):
        sdedit(DENOISER, SCHEDULE, image, 1.5, steps=10)


def run_method(name, x_T, generator):
    y = Y.expand(len(x_T), D)
    if name == "replacement":
        return inpaint_replacement(DENOISER, SIGMAS, x_T, y, MASK, generator=generator)
    if name == "repaint":
        return repaint(DENOISER, SIGMAS, x_T, y, MASK, resamplings=2, generator=generator)
    if name == "dps":
        return dps(DENOISER, SIGMAS, x_T, Y_VEC, Linear(A_VEC), step_size=0.1, generator=generator)
    return sdedit(DENOISER, SCHEDULE, x_T, 0.5, steps=20, generator=generator)


METHODS = ["replacement", "repaint", "dps", "sdedit"]


@pytest.mark.parametrize("name", METHODS)
def test_deterministic_given_the_generator(name):
    first = run_method(name, noise(16), seeded(7)).samples
    assert torch.equal(first, run_method(name, noise(16), seeded(7)).samples)
    assert not torch.equal(first, run_method(name, noise(16), seeded(8)).samples)


@pytest.mark.parametrize("name", METHODS)
def test_a_sample_depends_only_on_its_seed(name):
    """With per-sample generators a row is the same in a batch of 1 and of 3 (DPS: per-row norms)."""
    x_T = noise(3)
    alone = run_method(name, x_T[1:2], PerSampleGenerator([11])).samples
    batch = run_method(name, x_T, PerSampleGenerator([10, 11, 12])).samples
    assert torch.allclose(alone[0], batch[1], atol=1e-12)


def test_operators():
    image = torch.randn(2, 3, 8, 8, generator=seeded(0), dtype=torch.float64)
    constant = torch.full((2, 3, 8, 8), 0.7, dtype=torch.float64)
    assert torch.allclose(Downsample(2)(constant), torch.full((2, 3, 4, 4), 0.7).double())
    assert torch.allclose(
        Downsample(4)(image), image.unfold(2, 4, 4).unfold(3, 4, 4).mean((-1, -2))
    )
    assert torch.allclose(GaussianBlur(5, 1.5)(constant), constant)  # reflect: stays constant
    zero_padded = GaussianBlur(5, 1.5, padding="zeros")(constant)
    assert torch.allclose(zero_padded[..., 2:-2, 2:-2], constant[..., 2:-2, 2:-2])  # the interior
    assert (zero_padded[..., 0, :] < 0.7).all()  # the border darkens
    mask = (torch.rand(1, 1, 8, 8, generator=seeded(1)) > 0.5).double()
    assert torch.equal(Mask(mask)(image), mask * image) and Mask(mask).mask is mask
    matrix = torch.randn(3, D, generator=seeded(2), dtype=torch.float64)
    vectors = noise(5)
    assert torch.allclose(Linear(matrix)(vectors), vectors @ matrix.T)
    assert torch.equal(FunctionOperator(torch.tanh)(vectors), torch.tanh(vectors))


@pytest.mark.parametrize(
    "operator",
    [Mask((torch.arange(16).view(4, 4) % 3 == 0).double()), Downsample(2), GaussianBlur(3, 0.8),
     GaussianBlur(3, 0.8, padding="zeros"), FunctionOperator(torch.sin)],
)  # fmt: skip
def test_operators_are_differentiable(operator):
    x = torch.randn(1, 2, 4, 4, generator=seeded(3), dtype=torch.float64, requires_grad=True)
    target = operator(x.detach()) + 0.1
    assert torch.autograd.gradcheck(lambda x: (operator(x) - target).norm(), (x,))


def test_zero_padded_blur_is_symmetric():
    basis = torch.eye(16, dtype=torch.float64).view(-1, 1, 4, 4)
    A = GaussianBlur(3, 1.0, padding="zeros")(basis).flatten(1).T
    assert torch.allclose(A, A.T)


# ---------------------------------------------------------------- DDRM and ΠGDM


@pytest.mark.parametrize(
    ("operator", "shape"),
    [
        (Mask(torch.tensor([[[1.0, 0.0, 1.0], [0.0, 1.0, 1.0], [1.0, 1.0, 0.0]]])), (1, 3, 3)),
        (Downsample(2), (2, 4, 4)),
        (GaussianBlur(3, 1.0), (1, 4, 4)),
        (GaussianBlur(3, 1.0, padding="zeros"), (1, 4, 4)),
        (Colorize(), (3, 2, 2)),
        (Linear(A_VEC), (D,)),
    ],
    ids=["mask", "downsample", "blur", "blur-zeros", "colorize", "dense"],
)
def test_the_spectral_operator_is_the_operators_svd(operator, shape):
    op = SpectralOperator.of(operator, shape)
    x = torch.randn(5, *shape, generator=seeded(3), dtype=torch.float64)
    dims = op.v.shape[0]
    assert torch.allclose(op.v.T @ op.v, torch.eye(dims, dtype=torch.float64), atol=1e-10)
    assert torch.allclose(op.from_spectral(op.to_spectral(x)), x, atol=1e-10)
    y = operator(x).flatten(1)
    via_svd = (op.to_spectral(x)[:, : op.rank] * op.s) @ op.u.T
    assert torch.allclose(via_svd, y, atol=1e-10)
    # ȳ = diag(s)⁻¹Uᵀy is x̄ on the measured coordinates; σ_y = 0, r = 1 gives the pseudo-inverse
    assert torch.allclose(op.measured(y), op.to_spectral(x)[:, : op.rank], atol=1e-8)
    matrix = torch.stack(
        [operator(e[None]).flatten() for e in torch.eye(dims).double().reshape(dims, *shape)], 1
    )
    pinv = torch.linalg.pinv(matrix)
    assert torch.allclose(op.regularised_adjoint(y, 1.0, 0.0).flatten(1), y @ pinv.T, atol=1e-8)


def unit_prior_posterior(noise_std):
    """The exact posterior of N(m, I) under y = A x + n: ΠGDM's r_t² is exact for unit variance."""
    eye = torch.eye(D, dtype=torch.float64)
    gain = A_VEC.T @ torch.linalg.inv(A_VEC @ A_VEC.T + noise_std**2 * torch.eye(len(A_VEC)))
    return MEAN + gain @ (Y_VEC - A_VEC @ MEAN), eye - gain @ A_VEC


def test_pigdm_samples_the_exact_posterior_of_a_unit_variance_prior():
    """p(x_0|x_t) = N(x̂_0, σ²/(1 + σ²) I) holds exactly for N(m, I), so the guided denoiser is the
    exact conditional one: moments within Monte-Carlo error (measured: mean 0.022, cov 0.032)."""
    mean, cov = unit_prior_posterior(NOISE_STD)
    op = SpectralOperator.of(Linear(A_VEC), (D,))
    unit = GaussianDenoiser(MEAN, torch.eye(D, dtype=torch.float64))
    out = pigdm(
        unit, SIGMAS, noise(N), Y_VEC.expand(N, -1), op, noise_std=NOISE_STD, generator=seeded(2)
    )
    assert out.nfe == 100
    assert_moments(out.samples, mean, cov)


def test_ddrm_keeps_noiseless_measurements_exactly_and_is_biased_in_spread():
    """Noiseless, η_b = 1: A x_0 = y to round-off. On N(m, I) the mean is unbiased (measured
    error 0.025 against Monte Carlo's ~0.03) and η = 0.85 shrinks the covariance (measured
    |error| 0.22; 0.03 at η = 0, the deterministic chain)."""
    op = SpectralOperator.of(Linear(A_VEC), (D,))
    x = ddrm(DENOISER, SIGMAS, noise(N), Y_VEC.expand(N, -1), op, generator=seeded(2)).samples
    assert (x @ A_VEC.T - Y_VEC).abs().max() < 1e-10
    unit = GaussianDenoiser(MEAN, torch.eye(D, dtype=torch.float64))
    mean, cov = unit_prior_posterior(NOISE_STD)
    y = Y_VEC.expand(N, -1)
    x = ddrm(unit, SIGMAS, noise(N), y, op, noise_std=NOISE_STD, generator=seeded(2)).samples
    assert (x.mean(0) - mean).norm() < 5 * (cov.diag().sum() / N).sqrt()
    assert 0.1 < (torch.cov(x.T) - cov).abs().max() < 0.3
    deterministic = ddrm(unit, SIGMAS, noise(N), y, op, noise_std=NOISE_STD, eta=0.0,
                         generator=seeded(2)).samples  # fmt: skip
    assert (torch.cov(deterministic.T) - cov).abs().max() < 0.08


def test_ddrm_leaves_coordinates_measured_more_noisily_than_sigma_max_to_the_prior():
    """A singular value so small that σ_y/s_i exceeds σ_T (a blur's high frequencies under noise)
    carries no usable information: DDRM samples that coordinate from the prior N(m, I) instead of
    stopping, and still conditions on the well-measured one (exact posterior of a unit prior)."""
    unit = GaussianDenoiser(MEAN, torch.eye(D, dtype=torch.float64))
    matrix = torch.zeros(2, D, dtype=torch.float64)
    matrix[0, 0], matrix[1, 1] = 1.0, 1e-6  # σ_y/s_1 = 1e5 ≫ σ_T
    op = SpectralOperator.of(Linear(matrix), (D,))
    y = torch.tensor([1.5, 0.0], dtype=torch.float64).expand(N, -1)
    # η = 0: the deterministic chain, whose spread is the prior's (η > 0 narrows it, as above)
    x = ddrm(unit, SIGMAS, noise(N), y, op, noise_std=NOISE_STD, eta=0.0, generator=seeded(2))
    samples = x.samples
    assert torch.isfinite(samples).all()
    tolerance = 5 / N**0.5  # five standard errors of a unit-variance mean
    posterior_mean = (MEAN[0] + 1.5 / NOISE_STD**2) / (1 + 1 / NOISE_STD**2)
    assert abs(float(samples[:, 0].mean()) - float(posterior_mean)) < tolerance
    assert abs(float(samples[:, 1].mean()) - float(MEAN[1])) < tolerance
    assert abs(float(samples[:, 1].std()) - 1.0) < 0.08


@pytest.mark.parametrize(
    ("solver", "measured"), [(ddrm, 0.42), (pigdm, 0.52)], ids=["ddrm", "pigdm"]
)
def test_ddrm_and_pigdm_move_toward_the_posterior_of_a_correlated_prior(solver, measured):
    """Correlated N(m, S): both treat Cov[x_0|x_t] as isotropic in some basis, a bias. Measured
    ‖mean error‖ / ‖prior mean − posterior mean‖: DDRM 0.42, ΠGDM 0.52 (DPS: 0.13)."""
    exact_mean, _ = gaussian_posterior(A_VEC, Y_VEC, NOISE_STD)
    op = SpectralOperator.of(Linear(A_VEC), (D,))
    y = Y_VEC.expand(N, -1)
    x = solver(DENOISER, SIGMAS, noise(N), y, op, noise_std=NOISE_STD, generator=seeded(2)).samples
    ratio = float((x.mean(0) - exact_mean).norm() / (MEAN - exact_mean).norm())
    assert ratio < measured + 0.1
