"""Fréchet distance between Gaussians fitted to two sets of features."""

from __future__ import annotations

import warnings

import numpy as np
import scipy.linalg

IMAGINARY_TOLERANCE = 1e-3
"""Largest imaginary part of sqrtm(S_a S_b), relative to its real part, put down to round-off."""


def _sqrtm_product(cov_a: np.ndarray, cov_b: np.ndarray) -> np.ndarray:
    """(S_a S_b)^{1/2}, real part; a tiny ridge is added if the product is too singular."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        root: np.ndarray = scipy.linalg.sqrtm(cov_a @ cov_b)
        if not np.isfinite(root).all():
            ridge = 1e-6 * np.eye(len(cov_a))
            root = scipy.linalg.sqrtm((cov_a + ridge) @ (cov_b + ridge))
    if np.iscomplexobj(root):
        scale = max(1.0, float(np.abs(root.real).max()))
        if np.abs(root.imag).max() > IMAGINARY_TOLERANCE * scale:
            raise ValueError("sqrtm(S_a S_b) has a large imaginary part; covariances ill-posed")
        root = root.real
    return root


def frechet_distance(feats_a: np.ndarray, feats_b: np.ndarray) -> float:
    """Fréchet distance of Gaussians fitted to features (N_a, D) and (N_b, D), in float64.

    ‖μ_a − μ_b‖² + tr(S_a + S_b − 2 (S_a S_b)^{1/2}), the FID of Heusel et al. (2017),
    "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash Equilibrium",
    with unbiased (N − 1) covariances. Tiny imaginary parts of the matrix square root, which
    come from round-off, are dropped; large ones raise ValueError.
    """
    a = np.asarray(feats_a, dtype=np.float64)
    b = np.asarray(feats_b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"need feature arrays (N_a, D), (N_b, D); got {a.shape}, {b.shape}")
    if len(a) < 2 or len(b) < 2:
        raise ValueError("need at least two feature vectors per set to fit a covariance")
    mean_a, mean_b = a.mean(0), b.mean(0)
    cov_a = np.atleast_2d(np.cov(a, rowvar=False))
    cov_b = np.atleast_2d(np.cov(b, rowvar=False))
    trace_root = np.trace(_sqrtm_product(cov_a, cov_b))
    distance = ((mean_a - mean_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_root
    return max(float(distance), 0.0)
