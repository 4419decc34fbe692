"""FID / IS / KID / PRDC through torch-fidelity, offline: the real code path with stand-in
Inception weights built here (random, with torch-fidelity's layout), and the Fréchet distance
against its closed form for Gaussians."""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import pytest
import scipy.linalg
import torch

import ddpmkit
from ddpmkit.cli import main
from ddpmkit.evaluation import fidelity, frechet_distance
from ddpmkit.evaluation.fidelity import Statistics, check_inception_weights

torch_fidelity = pytest.importorskip("torch_fidelity")
pytest.importorskip("prdc")


@pytest.fixture(scope="module")
def stand_in_weights(tmp_path_factory):
    """A state dict of torch-fidelity's Inception-v3 with random weights, saved as its .pth."""
    from torch_fidelity import feature_extractor_inceptionv3 as inception

    with pytest.MonkeyPatch.context() as patch:  # build the network without any weights
        patch.setattr(inception, "load_state_dict_from_url", lambda *a, **k: {})
        patch.setattr(inception.FeatureExtractorInceptionV3, "load_state_dict", lambda *a: None)
        torch.manual_seed(0)
        network = inception.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    path = tmp_path_factory.mktemp("weights") / "stand-in-inception.pth"
    torch.save(network.state_dict(), path)
    return path


@pytest.fixture
def published(monkeypatch, stand_in_weights):
    """The stand-in's checksum in place of the published one, as if it were the real file."""
    digest = hashlib.sha256(stand_in_weights.read_bytes()).hexdigest()
    monkeypatch.setattr(fidelity, "INCEPTION_SHA256_PREFIX", digest[:8])
    return stand_in_weights


def closed_form(mu1, s1, mu2, s2) -> float:
    """‖μ1 − μ2‖² + tr(Σ1 + Σ2 − 2(Σ1^{1/2} Σ2 Σ1^{1/2})^{1/2}) of two Gaussians."""
    root1 = scipy.linalg.sqrtm(s1).real
    cross = scipy.linalg.sqrtm(root1 @ s2 @ root1).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * cross))


def test_frechet_distance_matches_the_gaussians_closed_form():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    a, b = rng.normal(size=(6, 6)), rng.normal(size=(6, 6))
    s1, s2 = a @ a.T + np.eye(6), b @ b.T + 0.5 * np.eye(6)
    fid = fidelity.frechet_inception_distance(
        fidelity.InceptionFeatures(np.zeros((2, 6)), np.zeros((2, 2))), Statistics(mu2, s2)
    )  # zero features: μ = 0, Σ = 0
    assert fid == pytest.approx((mu2**2).sum() + np.trace(s2), rel=1e-6)  # Σ_g = 0
    stats1, stats2 = Statistics(mu1, s1), Statistics(mu2, s2)
    from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_statistics_to_metric

    library = fid_statistics_to_metric(stats1.as_dict(), stats2.as_dict(), False)[KEY_METRIC_FID]
    assert library == pytest.approx(closed_form(mu1, s1, mu2, s2), rel=1e-6)
    # diagonal covariances: Σ_i (σ1_i − σ2_i)² + ‖μ1 − μ2‖², exactly
    d1, d2 = np.diag([1.0, 4.0, 9.0]), np.diag([4.0, 4.0, 1.0])
    diagonal = fid_statistics_to_metric(
        Statistics(np.zeros(3), d1).as_dict(), Statistics(np.ones(3), d2).as_dict(), False
    )[KEY_METRIC_FID]
    assert diagonal == pytest.approx(1 + 0 + 4 + 3, rel=1e-9)
    # the library and ddpmkit's own (digits) Fréchet distance agree on sampled features
    x, y = rng.normal(size=(500, 6)) @ a, rng.normal(size=(400, 6)) @ b + 1
    ours = frechet_distance(x, y)
    theirs = fidelity.frechet_inception_distance(
        fidelity.InceptionFeatures(x, np.zeros((500, 2))), Statistics.of(y)
    )
    assert theirs == pytest.approx(ours, rel=1e-6)


def test_weights_are_checked_before_use(tmp_path, stand_in_weights, monkeypatch):
    with pytest.raises(ValueError, match="does not start with the published 6726825d"):
        check_inception_weights(stand_in_weights)

    class Payload:  # a pickle that would run a command when loaded without weights_only
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    evil = tmp_path / "evil.pth"
    torch.save({"w": torch.zeros(1), "x": Payload()}, evil)
    monkeypatch.setattr(
        fidelity, "INCEPTION_SHA256_PREFIX", hashlib.sha256(evil.read_bytes()).hexdigest()[:8]
    )
    with pytest.raises(ValueError, match="not a plain state dict"):
        check_inception_weights(evil)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    from test_diffusers_folders import write_pipeline

    return write_pipeline(tmp_path_factory.mktemp("hub") / "ddpm-cifar10-32")


def test_eval_metrics_from_the_cli_with_local_weights(
    tmp_path, pipeline, published, monkeypatch, capsys
):
    monkeypatch.setenv("DDPMKIT_CACHE", str(tmp_path / "cache"))
    images = np.random.default_rng(0).integers(0, 256, (10, 8, 8, 3), dtype=np.uint8)
    np.savez(tmp_path / "reference.npz", arr_0=images)
    report = tmp_path / "metrics.json"
    args = ["eval", str(pipeline), "--metrics", "fid,is,kid,prdc", "--reference",
            str(tmp_path / "reference.npz"), "--num_samples", "8", "--batch_size", "5",
            "--inception_weights", str(published), "--quiet"]  # fmt: skip
    assert main([*args, "--out", str(report)]) == 0
    values = json.loads(report.read_text())["metrics"]
    assert set(values) == {"fid", "is", "is_std", "kid", "kid_std", "precision", "recall",
                           "density", "coverage"}  # fmt: skip
    assert values["fid"] > 0 and values["is"] >= 1.0 and 0 <= values["coverage"] <= 1
    assert "FID from 8 samples is biased upwards" in capsys.readouterr().err
    assert len(list((tmp_path / "cache" / "fidelity").glob("*.npz"))) == 1
    # the same evaluation from Python: the reference features from the cache, the same values
    quality = ddpmkit.load(pipeline, device="cpu").quality(
        ("fid", "is", "kid", "prdc"), str(tmp_path / "reference.npz"), num_samples=8,
        batch_size=5, inception_weights=published, progress=False,
    )  # fmt: skip
    assert isinstance(quality, ddpmkit.QualityReport) and quality.num_samples == 8
    assert quality.metrics == pytest.approx(values, rel=1e-6)


@pytest.mark.slow
def test_eval_metrics_reuse_cached_features_and_precomputed_statistics(
    tmp_path, pipeline, published, monkeypatch, capsys
):
    monkeypatch.setenv("DDPMKIT_CACHE", str(tmp_path / "cache"))
    images = np.random.default_rng(0).integers(0, 256, (10, 8, 8, 3), dtype=np.uint8)
    np.savez(tmp_path / "reference.npz", arr_0=images)
    args = ["eval", str(pipeline), "--metrics", "fid,is,kid,prdc", "--reference",
            str(tmp_path / "reference.npz"), "--num_samples", "8", "--batch_size", "5",
            "--inception_weights", str(published), "--quiet"]  # fmt: skip
    assert main([*args, "--out", str(tmp_path / "first.json")]) == 0
    values = json.loads((tmp_path / "first.json").read_text())["metrics"]
    # the reference features come from the cache the second time: the same FID
    assert main([*args, "--out", str(tmp_path / "again.json")]) == 0
    assert json.loads((tmp_path / "again.json").read_text())["metrics"]["fid"] == values["fid"]
    # precomputed statistics serve FID alone
    np.savez(tmp_path / "stats.npz", mu=np.zeros(2048), sigma=np.eye(2048))
    stats = [*args[:3], "fid", "--reference", str(tmp_path / "stats.npz"), *args[6:]]
    assert main([*stats, "--out", str(tmp_path / "stats.json")]) == 0
    kid = [*args[:3], "kid", "--reference", str(tmp_path / "stats.npz"), *args[6:]]
    assert main([*kid, "--out", str(tmp_path / "kid.json")]) == 2
    assert "precomputed statistics (mu, sigma) serve FID only" in capsys.readouterr().err
