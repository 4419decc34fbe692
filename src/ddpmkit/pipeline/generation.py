"""Drawing samples from a trained network in batches, each sample from its own seed."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from ddpmkit.config.builders import class_labels_of
from ddpmkit.config.schema import SampleConfig
from ddpmkit.core.denoisers import Denoiser
from ddpmkit.core.precision import autocast
from ddpmkit.core.randomness import PerSampleGenerator, randn
from ddpmkit.core.thresholding import ClippedDenoiser, DynamicThresholding
from ddpmkit.guidance import (
    AutoGuidance,
    Classifier,
    ClassifierFreeGuidance,
    ClassifierGuidance,
    classifier_on_sigma,
)
from ddpmkit.outputs import save_npz, save_picture
from ddpmkit.pipeline.autoguidance import load_guide
from ddpmkit.pipeline.classifier import LoadedClassifier
from ddpmkit.pipeline.model import TrainedModel
from ddpmkit.samplers import SAMPLERS, SampleResult, sample

ProgressCallback = Callable[[int, int], None]
"""Called with (sampling steps done, total) as sampling advances."""


@dataclass(frozen=True)
class Conditioning:
    """What a sampling run may condition on: the model's classes and ∅, and a noisy classifier."""

    num_classes: int | None = None  # K of a class-conditional model (or of the classifier)
    null_label: int | None = None  # ∅ of a model trained with label dropout
    conditional_model: bool = False  # the network takes class labels
    classifier: Classifier | None = None  # p_φ(y|x, σ) for classifier guidance

    @classmethod
    def of(cls, model: TrainedModel, classifier: LoadedClassifier | None = None) -> Conditioning:
        """The model's classes, and a classifier read on the model's schedule, which must be the
        one the classifier was trained under."""
        num_classes, null = class_labels_of(model.config.model)
        if classifier is None:
            return cls(num_classes, null, num_classes is not None)
        if model.captions is not None:
            raise ValueError(
                "classifier guidance steers class labels; a text-conditional model takes prompts "
                "(use classifier-free guidance: sample.guidance)"
            )
        classifier.check_schedule(model.schedule)
        if num_classes is not None and classifier.num_classes != num_classes:
            raise ValueError(
                f"the classifier has {classifier.num_classes} classes but the model {num_classes}"
            )
        classifier.network.to(model.device)
        guide = classifier_on_sigma(classifier.network, model.schedule)
        return cls(classifier.num_classes, null, num_classes is not None, guide)


def generate(
    model: TrainedModel,
    config: SampleConfig | None = None,
    *,
    classifier: LoadedClassifier | None = None,
    class_labels: Tensor | None = None,
    record_trajectory: bool = False,
    progress: ProgressCallback | None = None,
    rows: slice | None = None,
    guide: TrainedModel | None = None,
) -> SampleResult:
    """``config.num_samples`` samples of the model (its stored sample options by default);
    sample i is seeded ``config.seed + i``. With ``rows`` only those samples are drawn (one
    process's share), each exactly as in the whole set: its seed, its label.

    Batches of ``config.batch_size`` are drawn one after another; since every sample's noise comes
    from its own generator, the result does not depend on the batch size. With a class-conditional
    model or a ``classifier`` sample i gets class ``config.label`` or i mod K, unless
    ``class_labels`` are given, and the configured guidance steers towards it. With
    ``config.autoguidance`` ≠ 1 the weaker model is ``guide``, else the one ``config.guide``
    names (``pipeline.autoguidance``); a run's first checkpoint, which has none, is sampled
    unguided with a warning.
    """
    config = config or model.config.sample
    device = model.device
    conditioning = Conditioning.of(model, classifier)
    if class_labels is None and not (config.prompt and model.captions):
        class_labels = sample_labels(config, conditioning.num_classes)
    class_labels = network_conditions(model, config, class_labels)
    denoiser: Denoiser = model.denoiser
    if config.autoguidance != 1.0:
        weak = guide or load_guide(model, config.guide)
        if weak is None:
            warnings.warn(
                f"{model.checkpoint}: no earlier checkpoint of its run to autoguide with; "
                "sampling without autoguidance (name one with sample.guide)",
                stacklevel=2,
            )
        else:
            denoiser = AutoGuidance(denoiser, weak.denoiser, config.autoguidance)
    denoiser = wrap_denoiser(guided_denoiser(denoiser, config, conditioning), config)
    steps = config.steps_for(model.schedule.num_steps)
    first, last, _ = (rows or slice(None)).indices(config.num_samples)
    starts = range(first, last, config.batch_size)
    options = sampler_options(config)  # resolved once, not per batch
    results = []
    for batch_index, start in enumerate(starts):
        stop = min(start + config.batch_size, last)
        generator = PerSampleGenerator(range(config.seed + start, config.seed + stop), device)
        labels = None if class_labels is None else class_labels[start:stop].to(device)
        callback = None
        if progress is not None:
            done, total = batch_index * steps, steps * len(starts)
            callback = lambda i, _n, _x, done=done, total=total: progress(done + i, total)  # noqa: E731
        x_T = randn((stop - start, *model.shape), generator, torch.float32, device)
        with autocast(config.precision, device):
            result = sample(
                config.sampler, denoiser, model.schedule, x_T, steps, grid=config.grid,
                rho=config.rho, timesteps=config.timesteps, generator=generator,
                class_labels=labels, record_trajectory=record_trajectory, callback=callback,
                **options,
            )  # fmt: skip
        results.append(result)
    result = _concatenate(results)
    return dataclasses.replace(result, samples=model.decode(result.samples))


def network_conditions(
    model: TrainedModel, config: SampleConfig, class_labels: Tensor | None
) -> Tensor | None:
    """What the network is conditioned on: the class labels, or for a text-conditional model the
    token ids of ``config.prompt`` or of each label's first caption (ids given are kept)."""
    if model.captions is None:
        if config.prompt is not None:
            raise ValueError(
                "sample.prompt needs a text-conditional model (model.text_conditional)"
            )
        return class_labels
    if config.prompt is not None:
        return model.captions.prompt(config.prompt, config.num_samples)
    if class_labels is None or class_labels.ndim == 2:
        return class_labels
    return model.captions.tokens(class_labels)


def write_samples(
    model: TrainedModel,
    stem: Path,
    progress: ProgressCallback | None = None,
    guide: TrainedModel | None = None,
) -> tuple[Path, Path]:
    """Draw the model's configured samples (autoguided by ``guide`` if given) and write
    ``stem.png`` and ``stem.npz``."""
    result = generate(model, progress=progress, guide=guide)
    png = save_picture(result.samples, stem.with_suffix(".png"))
    return png, save_npz(result.samples, stem.with_suffix(".npz"))


def sample_labels(config: SampleConfig, num_classes: int | None) -> Tensor | None:
    """Class ``config.label`` for every sample, or i mod K for sample i; None without classes."""
    if num_classes is None:
        if config.label is not None:
            raise ValueError(
                "sample.label needs a class-conditional model (model.class_conditional) or a "
                "classifier (sample.classifier)"
            )
        return None
    if config.label is not None and not 0 <= config.label < num_classes:
        raise ValueError(f"sample.label must lie in 0 … {num_classes - 1}, got {config.label}")
    if config.label is not None:
        return torch.full((config.num_samples,), config.label, dtype=torch.long)
    return torch.arange(config.num_samples) % num_classes


def guided_denoiser(
    denoiser: Denoiser, config: SampleConfig, conditioning: Conditioning
) -> Denoiser:
    """Classifier-free guidance with scale ``config.guidance`` (unless 1) and classifier guidance
    with ``config.classifier_scale`` when a classifier is given (``ddpmkit.guidance``)."""
    if config.guidance != 1.0:
        if conditioning.null_label is None:
            raise ValueError(
                "sample.guidance ≠ 1 needs a model trained with model.label_dropout > 0 "
                "(classifier-free guidance mixes in the null class ∅)"
            )
        denoiser = ClassifierFreeGuidance(denoiser, config.guidance, conditioning.null_label)
    if conditioning.classifier is not None:
        denoiser = ClassifierGuidance(
            denoiser, conditioning.classifier, config.classifier_scale,
            conditional=conditioning.conditional_model,
        )  # fmt: skip
    return denoiser


def wrap_denoiser(denoiser: Denoiser, config: SampleConfig) -> Denoiser:
    """The denoiser with the configured clipping or dynamic thresholding of x̂_0."""
    if config.dynamic_threshold is not None:
        return DynamicThresholding(denoiser, config.dynamic_threshold)
    return ClippedDenoiser(denoiser) if config.clip_x0 else denoiser


def sampler_options(config: SampleConfig) -> dict[str, object]:
    """The config fields that the chosen sampler takes as keyword options."""
    return {name: getattr(config, name) for name in SAMPLERS[config.sampler].options()}


def _concatenate(results: list[SampleResult]) -> SampleResult:
    samples = torch.cat([r.samples.float().cpu() for r in results])
    trajectory = None
    if results[0].trajectory is not None:
        steps = zip(*(r.trajectory or [] for r in results), strict=True)
        trajectory = [torch.cat(states) for states in steps]
    return SampleResult(samples, trajectory, sum(r.nfe for r in results))
