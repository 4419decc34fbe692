"""Tests of ddpmkit.evaluation: the digits classifier, the Fréchet distance and the report."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ddpmkit.data.digits import digits_arrays
from ddpmkit.evaluation import (
    DigitsClassifier,
    DigitsQuality,
    assess_digits,
    frechet_distance,
    train_digits_classifier,
)

BENCH_SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "digits_quality.py"


@pytest.fixture(scope="module")
def classifier() -> DigitsClassifier:
    return train_digits_classifier(seed=0)


@pytest.fixture(scope="module")
def heldout_report(classifier: DigitsClassifier) -> DigitsQuality:
    return assess_digits(digits_arrays("heldout")[0], classifier)


def failed_criteria(report: DigitsQuality) -> set[str]:
    names = ("confident share", "class shares", "FID ratio")
    return {name for name in names if any(f.startswith(name) for f in report.failures())}


# --- Fréchet distance --------------------------------------------------------------------------


def closed_form_fd(m1: np.ndarray, s1: np.ndarray, m2: np.ndarray, s2: np.ndarray) -> float:
    """|m1 - m2|² + tr(S1 + S2 - 2 (S1 S2)^{1/2}), the root's trace via symmetric eigenvalues."""
    w, v = np.linalg.eigh(s1)
    root_s1 = (v * np.sqrt(w)) @ v.T
    inner = np.linalg.eigvalsh(root_s1 @ s2 @ root_s1)  # same spectrum as S1 S2
    return float(((m1 - m2) ** 2).sum() + np.trace(s1 + s2) - 2 * np.sqrt(inner.clip(0)).sum())


def random_covariance(rng: np.random.Generator, dim: int) -> np.ndarray:
    a = rng.standard_normal((dim, dim))
    return a @ a.T / dim + 0.1 * np.eye(dim)


def with_exact_moments(
    rng: np.random.Generator, n: int, mean: np.ndarray, cov: np.ndarray
) -> np.ndarray:
    """n points whose sample mean and (N - 1) covariance are exactly `mean` and `cov`."""
    z = rng.standard_normal((n, len(mean)))
    z -= z.mean(0)
    z = z @ np.linalg.inv(np.linalg.cholesky(np.cov(z, rowvar=False))).T
    return z @ np.linalg.cholesky(cov).T + mean


def test_frechet_distance_matches_closed_form_for_exact_moments() -> None:
    rng = np.random.default_rng(0)
    dim = 5
    m1, m2 = rng.standard_normal(dim), rng.standard_normal(dim)
    s1, s2 = random_covariance(rng, dim), random_covariance(rng, dim)
    a = with_exact_moments(rng, 400, m1, s1)
    b = with_exact_moments(rng, 300, m2, s2)
    assert frechet_distance(a, b) == pytest.approx(closed_form_fd(m1, s1, m2, s2), rel=1e-9)


def test_frechet_distance_of_large_gaussian_samples() -> None:
    rng = np.random.default_rng(1)
    dim = 4
    m1, m2 = np.zeros(dim), np.full(dim, 0.5)
    s1, s2 = random_covariance(rng, dim), np.diag([0.2, 0.5, 1.0, 2.0])
    a = rng.multivariate_normal(m1, s1, size=200_000)
    b = rng.multivariate_normal(m2, s2, size=200_000)
    expected = closed_form_fd(m1, s1, m2, s2)
    assert frechet_distance(a, b) == pytest.approx(expected, rel=0.03)


def test_frechet_distance_of_diagonal_gaussians() -> None:
    """Commuting covariances: FD = |m1 - m2|² + Σ (√a_i - √b_i)²."""
    rng = np.random.default_rng(2)
    var_a, var_b = np.array([0.5, 1.0, 4.0]), np.array([2.0, 1.0, 0.25])
    mean_a, mean_b = np.array([1.0, 0.0, -1.0]), np.array([0.0, 0.0, 1.0])
    a = with_exact_moments(rng, 500, mean_a, np.diag(var_a))
    b = with_exact_moments(rng, 500, mean_b, np.diag(var_b))
    expected = ((mean_a - mean_b) ** 2).sum() + ((np.sqrt(var_a) - np.sqrt(var_b)) ** 2).sum()
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_is_zero_for_identical_sets_and_symmetric() -> None:
    rng = np.random.default_rng(3)
    a = rng.standard_normal((500, 16)) @ rng.standard_normal((16, 16))
    b = rng.standard_normal((300, 16)) * 2 + 1
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-8)
    assert frechet_distance(a, b) > 1.0


def test_frechet_distance_handles_singular_covariances() -> None:
    constant = np.ones((50, 3))
    rng = np.random.default_rng(4)
    b = rng.standard_normal((50, 3))
    assert frechet_distance(constant, constant) == pytest.approx(0.0, abs=1e-8)
    assert np.isfinite(frechet_distance(constant, b))


def test_frechet_distance_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError):
        frechet_distance(np.zeros((10, 3)), np.zeros((10, 4)))


# --- classifier --------------------------------------------------------------------------------


def test_classifier_shapes(classifier: DigitsClassifier) -> None:
    x = digits_arrays("heldout")[0][:7]
    with torch.no_grad():
        assert classifier(x).shape == (7, 10)
        assert classifier.features(x).shape == (7, 32)


def test_training_is_deterministic_and_leaves_global_rng_alone(
    classifier: DigitsClassifier,
) -> None:
    rng_state = torch.get_rng_state()
    again = train_digits_classifier(seed=0)
    assert torch.equal(torch.get_rng_state(), rng_state)
    expected, actual = classifier.state_dict(), again.state_dict()
    assert expected.keys() == actual.keys()
    for name, value in expected.items():
        assert torch.equal(value, actual[name]), name


def test_heldout_digits_accurate_and_calibrated(heldout_report: DigitsQuality) -> None:
    assert heldout_report.heldout_accuracy >= 0.95
    assert 0.9 <= heldout_report.heldout_confident_share <= 0.995


# --- report ------------------------------------------------------------------------------------


def test_real_heldout_digits_pass(heldout_report: DigitsQuality) -> None:
    assert heldout_report.n == 297
    assert heldout_report.failures() == []
    assert heldout_report.passes()
    assert heldout_report.class_shares.shape == (10,)
    assert heldout_report.class_shares.sum() == pytest.approx(1.0)
    assert heldout_report.reference_fid > 0


def test_training_digits_pass(classifier: DigitsClassifier) -> None:
    """Real digits other than the held-out reference also pass, with a FID ratio near 1."""
    report = assess_digits(digits_arrays("train")[0][:600], classifier)
    assert report.passes(), report.failures()
    assert report.fid_ratio < 2.0


def test_samples_are_clamped(classifier: DigitsClassifier, heldout_report) -> None:
    x = digits_arrays("heldout")[0]
    stretched = torch.where(x <= -1, -5.0, torch.where(x >= 1, 3.0, x))
    report = assess_digits(stretched, classifier)
    assert report.confident_share == heldout_report.confident_share
    assert report.fid == pytest.approx(heldout_report.fid, abs=1e-6)


def test_gaussian_noise_fails(classifier: DigitsClassifier) -> None:
    noise = torch.randn(500, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    report = assess_digits(noise, classifier)
    assert report.confident_share < 0.1
    assert {"confident share", "FID ratio"} <= failed_criteria(report)
    assert not report.passes()


def test_mean_image_fails(classifier: DigitsClassifier) -> None:
    mean = digits_arrays("train")[0].mean(0, keepdim=True).expand(300, -1, -1, -1)
    report = assess_digits(mean, classifier)
    assert report.confident_share == 0.0
    assert failed_criteria(report) == {"confident share", "class shares", "FID ratio"}


def test_blurred_digits_not_confident(classifier: DigitsClassifier) -> None:
    x = digits_arrays("heldout")[0]
    blurred = torch.nn.functional.avg_pool2d(
        torch.nn.functional.pad(x, (2, 2, 2, 2), mode="replicate"), 5, stride=1
    )
    report = assess_digits(blurred, classifier)
    assert report.confident_share < 0.1
    assert "confident share" in failed_criteria(report)


def test_single_class_fails_on_class_shares(classifier: DigitsClassifier) -> None:
    images, labels = digits_arrays("train")
    threes = images[labels == 3]
    report = assess_digits(threes, classifier)
    assert report.class_shares[3] > 0.9
    assert "class shares" in failed_criteria(report)
    assert "confident share" not in failed_criteria(report)
    assert "class shares outside" in report.failures()[0]


def test_thresholds_are_arguments(heldout_report: DigitsQuality) -> None:
    assert not heldout_report.passes(min_confident=0.999)
    assert not heldout_report.passes(class_range=(0.099, 0.2))
    assert heldout_report.passes(max_fid_ratio=1e-6)  # FID of a set to itself is ~0
    assert heldout_report.to_dict()["n"] == 297


def test_rejects_wrong_shape(classifier: DigitsClassifier) -> None:
    with pytest.raises(ValueError):
        assess_digits(torch.zeros(10, 64), classifier)


# --- bench script ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bench(classifier: DigitsClassifier):
    spec = importlib.util.spec_from_file_location("digits_quality", BENCH_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.train_digits_classifier = lambda seed=0: classifier  # reuse the trained one
    return module


def test_bench_script_real_passes(bench, tmp_path: Path, capsys) -> None:
    out = tmp_path / "real.json"
    assert bench.main(["--real", "--json", str(out)]) == 0
    assert "FAIL" not in capsys.readouterr().out
    assert json.loads(out.read_text())["passes"] is True


def test_bench_script_noise_fails(bench, tmp_path: Path, capsys) -> None:
    path = tmp_path / "noise.npz"
    rng = np.random.default_rng(0)
    np.savez(path, x=rng.standard_normal((200, 1, 8, 8)).astype(np.float32))
    out = tmp_path / "noise.json"
    assert bench.main([str(path), "--json", str(out)]) == 1
    assert "FAIL" in capsys.readouterr().out
    report = json.loads(out.read_text())
    assert report["passes"] is False and len(report["class_shares"]) == 10
