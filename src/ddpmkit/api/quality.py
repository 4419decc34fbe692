"""Inception-v3 metrics (FID, IS, KID, PRDC) of a loaded model's samples against a reference, the
work behind ``Model.quality`` and ``ddpmkit eval --metrics``."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import TensorDataset

from ddpmkit.evaluation.fidelity import (
    InceptionFeatures,
    check_inception_weights,
    inception_features,
    requires_fidelity,
    sample_metrics,
)
from ddpmkit.generation.sampling import generate
from ddpmkit.pipeline.quality import (
    ImageSet,
    cached_features,
    image_set,
    read_statistics,
    store_features,
    uint8_batches,
)
from ddpmkit.progress import ProgressCallback
from ddpmkit.storage.model import TrainedModel


@dataclass(frozen=True)
class QualityReport:
    """The metrics of a set of images against a reference.

    Attributes:
        metrics: each metric's value by name (``fid``, ``isc_mean``, ``kid_mean``, ``precision``, …).
        num_samples: how many images were scored.
        num_reference: how many reference images (None for precomputed statistics).
        seconds: the wall time, sampling included.
    """

    metrics: dict[str, float]
    num_samples: int
    num_reference: int | None
    seconds: float


def measure_quality(
    model: TrainedModel,
    metrics: tuple[str, ...],
    reference: str,
    *,
    num_samples: int,
    samples: str | Path | None = None,
    inception_weights: str | Path | None = None,
    batch_size: int = 100,
    seed: int = 0,
    progress: ProgressCallback | None = None,
) -> QualityReport:
    """``metrics`` of ``num_samples`` of the model's samples (or of the images ``samples``)
    against ``reference`` (see ``Model.quality``)."""
    requires_fidelity()
    start = time.perf_counter()
    weights = None
    if inception_weights is not None:
        weights = check_inception_weights(Path(inception_weights))
    given = None if samples is None else image_set(str(samples), model.shape, num_samples)
    statistics = read_statistics(Path(reference))  # the inputs are checked before any work
    references = None
    if statistics is None:
        references = image_set(reference, model.shape, None, model.training_data)
    target = statistics or _reference_features(references, weights, batch_size, model, progress)
    if given is not None:
        generated = given
    else:
        config = dataclasses.replace(model.config.sample, num_samples=num_samples)
        drawn = generate(model, config, progress=progress).samples
        dataset = TensorDataset(drawn, torch.zeros(len(drawn)))
        generated = ImageSet(dataset, len(drawn), "generated")
    batches = uint8_batches(generated, batch_size)
    ours = inception_features(batches, generated.count, weights, model.device, progress)
    values = sample_metrics(metrics, ours, target, seed=seed)
    count = None if references is None else references.count
    return QualityReport(values, generated.count, count, time.perf_counter() - start)


def _reference_features(
    reference: ImageSet | None,
    weights: Path | None,
    batch_size: int,
    model: TrainedModel,
    progress: ProgressCallback | None,
) -> InceptionFeatures:
    """The Inception features of the reference images, from the cache when computed before."""
    if reference is None:
        raise ValueError("the metrics need a reference: statistics or images")
    key = f"{reference.identity}:{'download' if weights is None else weights.name}"
    features = cached_features(key)
    if features is None:
        batches = uint8_batches(reference, batch_size)
        features = inception_features(batches, reference.count, weights, model.device, progress)
        store_features(key, features)
    return features
