"""Standard sample-quality metrics through torch-fidelity: FID, Inception Score, KID, and
precision / recall / density / coverage (the ``prdc`` package), all on Inception-v3 features.

torch-fidelity's Inception-v3 reproduces the TensorFlow network of the original FID code (its
weights, its resizing to 299×299), so the numbers compare with published ones. The weights come
from a local file, checked against the SHA-256 prefix torch-fidelity publishes in the file's
name and read as plain tensors first (a pickle that would run code is refused), or, on a
machine with internet access, from torch-fidelity's own download. Both libraries are optional
(``pip install ddpmkit[metrics]``).
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

INCEPTION_WEIGHTS = "weights-inception-2015-12-05-6726825d.pth"
"""torch-fidelity's Inception-v3 weights; the hex digits are their published SHA-256 prefix."""
INCEPTION_SHA256_PREFIX = "6726825d"
METRICS = ("fid", "is", "kid", "prdc")
UNBIASED_FID_SAMPLES = 10_000
"""Below this many samples the FID estimate is biased upwards (Chong & Forsyth 2020)."""

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class InceptionFeatures:
    """The 2048-d pool features (FID, KID, PRDC) and the 1008 logits (IS) of a set of images."""

    pool: np.ndarray  # (N, 2048) float64
    logits: np.ndarray  # (N, 1008) float64


def requires_fidelity() -> None:
    """ImportError with the install line when torch-fidelity or prdc is missing."""
    try:
        import prdc  # noqa: F401
        import torch_fidelity  # noqa: F401
    except ImportError as error:
        raise ImportError(
            f"the standard metrics need torch-fidelity and prdc ({error}); install them with "
            "pip install 'ddpmkit[metrics]'"
        ) from None


def check_inception_weights(path: Path, sha256_prefix: str | None = None) -> Path:
    """The weights file, once its SHA-256 starts with the published prefix (by default
    ``INCEPTION_SHA256_PREFIX``) and it reads as plain tensors (``torch.load(weights_only=True)``,
    which runs no code); ValueError otherwise."""
    sha256_prefix = sha256_prefix or INCEPTION_SHA256_PREFIX
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--inception_weights {path}: no such file")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if not digest.startswith(sha256_prefix):
        raise ValueError(
            f"--inception_weights {path}: SHA-256 {digest[:16]}… does not start with the published "
            f"{sha256_prefix} of {INCEPTION_WEIGHTS}; the file is another or a damaged one"
        )
    try:
        torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # any unpickling refusal: the file holds more than tensors
        raise ValueError(f"--inception_weights {path}: not a plain state dict ({error})") from None
    return path


def inception_features(
    batches: Iterable[Tensor],
    count: int,
    weights: Path | None,
    device: torch.device,
    progress: Progress | None = None,
) -> InceptionFeatures:
    """Features of uint8 image batches (B, 1 or 3, H, W); grey images are repeated to RGB.
    ``weights``: a checked local file, or None for torch-fidelity's download."""
    requires_fidelity()
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    try:
        extractor = FeatureExtractorInceptionV3(
            "inception-v3-compat",
            ["2048", "logits_unbiased"],
            feature_extractor_weights_path=None if weights is None else str(weights),
        ).to(device)
    except OSError as error:  # urllib's URLError is an OSError: offline, or a blocked host
        if weights is not None:
            raise
        raise ValueError(
            f"cannot download the Inception weights ({getattr(error, 'reason', error)}); pass "
            "--inception_weights FILE: weights-inception-2015-12-05-6726825d.pth from "
            "github.com/toshas/torch-fidelity/releases (v0.2.0), fetched once on a machine "
            "with internet access"
        ) from None
    pools, logits, done = [], [], 0
    with torch.no_grad():
        for batch in batches:
            images = batch.expand(-1, 3, -1, -1) if batch.shape[1] == 1 else batch
            pool, logit = extractor(images.to(device=device, dtype=torch.uint8))
            pools.append(pool.double().cpu())
            logits.append(logit.double().cpu())
            done += len(batch)
            if progress is not None:
                progress(done, count)
    return InceptionFeatures(torch.cat(pools).numpy(), torch.cat(logits).numpy())


def frechet_inception_distance(generated: InceptionFeatures, reference: Statistics) -> float:
    """FID: ‖μ_g − μ_r‖² + tr(Σ_g + Σ_r − 2(Σ_g Σ_r)^{1/2}) (Heusel et al. 2017, eq. 6)."""
    from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_statistics_to_metric

    ours = Statistics.of(generated.pool)
    return float(
        fid_statistics_to_metric(ours.as_dict(), reference.as_dict(), False)[KEY_METRIC_FID]
    )


@dataclass(frozen=True)
class Statistics:
    """Mean and covariance of features: all FID needs of a reference (a cacheable summary)."""

    mu: np.ndarray
    sigma: np.ndarray

    @classmethod
    def of(cls, features: np.ndarray) -> Statistics:
        return cls(features.mean(0), np.cov(features, rowvar=False))

    def as_dict(self) -> dict[str, np.ndarray]:
        return {"mu": self.mu, "sigma": self.sigma}


def sample_metrics(
    names: Iterable[str],
    generated: InceptionFeatures,
    reference: InceptionFeatures | Statistics,
    seed: int = 0,
) -> dict[str, float]:
    """The named metrics of generated against reference features (statistics serve FID only)."""
    requires_fidelity()
    from prdc import compute_prdc
    from torch_fidelity.metric_isc import (
        KEY_METRIC_ISC_MEAN,
        KEY_METRIC_ISC_STD,
        isc_features_to_metric,
    )
    from torch_fidelity.metric_kid import (
        KEY_METRIC_KID_MEAN,
        KEY_METRIC_KID_STD,
        kid_features_to_metric,
    )

    names = list(names)
    needs_features = [n for n in names if n in ("kid", "prdc")]
    if isinstance(reference, Statistics) and needs_features:
        raise ValueError(
            f"--metrics {','.join(needs_features)} need the reference's features; precomputed "
            "statistics (mu, sigma) serve FID only"
        )
    if len(generated.pool) < UNBIASED_FID_SAMPLES and "fid" in names:
        warnings.warn(
            f"FID from {len(generated.pool)} samples is biased upwards; published figures use "
            f"≥ {UNBIASED_FID_SAMPLES:,} (50,000 for CIFAR-10)",
            stacklevel=2,
        )
    results: dict[str, float] = {}
    if "fid" in names:
        stats = reference if isinstance(reference, Statistics) else Statistics.of(reference.pool)
        results["fid"] = frechet_inception_distance(generated, stats)
    if "is" in names:
        splits = min(10, len(generated.logits))
        score = isc_features_to_metric(
            torch.from_numpy(generated.logits), splits=splits, rng_seed=seed
        )
        results["is"], results["is_std"] = score[KEY_METRIC_ISC_MEAN], score[KEY_METRIC_ISC_STD]
    if "kid" in names and isinstance(reference, InceptionFeatures):
        size = min(1000, len(generated.pool), len(reference.pool))
        kid = kid_features_to_metric(
            torch.from_numpy(generated.pool), torch.from_numpy(reference.pool),
            kid_subset_size=size, rng_seed=seed, verbose=False,
        )  # fmt: skip
        results["kid"], results["kid_std"] = kid[KEY_METRIC_KID_MEAN], kid[KEY_METRIC_KID_STD]
    if "prdc" in names and isinstance(reference, InceptionFeatures):
        k = min(5, len(generated.pool) - 1, len(reference.pool) - 1)
        results |= compute_prdc(reference.pool, generated.pool, nearest_k=k)
    return {name: float(value) for name, value in results.items()}
