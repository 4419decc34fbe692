"""Drawing samples from a trained network in batches, each sample from its own seed: the sampling
denoiser (guidance and clipping) is assembled once by `sampling_denoiser`, then
`generate` only samples."""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import Tensor

from ddpmkit.config.builders import first_feature_map_values
from ddpmkit.config.execution import Execution
from ddpmkit.config.schema import SampleConfig
from ddpmkit.core.denoisers import Denoiser
from ddpmkit.core.finite import require_finite
from ddpmkit.core.randomness import PerSampleGenerator, randn
from ddpmkit.core.thresholding import ClippedDenoiser, DynamicThresholding
from ddpmkit.generation.conditioning import Conditioning, network_conditions, sample_labels
from ddpmkit.guidance import AutoGuidance, ClassifierFreeGuidance, ClassifierGuidance
from ddpmkit.memory import require_memory
from ddpmkit.networks.execution import CompiledNetwork
from ddpmkit.outputs import save_npz, save_picture
from ddpmkit.progress import ProgressCallback
from ddpmkit.samplers import SAMPLERS, SampleResult, sample
from ddpmkit.storage.classifier_folders import LoadedClassifier
from ddpmkit.storage.guides import find_guide
from ddpmkit.storage.model import TrainedModel


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

    Batches of ``config.batch_size`` are drawn one after another (`sample_batches`); since every
    sample's noise comes from its own generator, the result does not depend on the batch size.
    With a class-conditional model or a ``classifier`` sample i gets class ``config.label`` or
    i mod K, unless ``class_labels`` are given, and the configured guidance steers towards it.
    With ``config.autoguidance`` ≠ 1 the weaker model is ``guide``, else the one
    `ddpmkit.storage.guides.find_guide` finds. The samples are kept and joined: their memory is
    checked first (`check_sampling_memory`).
    """
    config = config or model.config.sample
    first, last, _ = (rows or slice(None)).indices(config.num_samples)
    check_sampling_memory(model, min(config.batch_size, max(last - first, 1)), last - first)
    batches = sample_batches(
        model, config, classifier=classifier, class_labels=class_labels,
        record_trajectory=record_trajectory, progress=progress, rows=rows, guide=guide,
    )  # fmt: skip
    return _concatenate(list(batches))


def sample_batches(
    model: TrainedModel,
    config: SampleConfig | None = None,
    *,
    classifier: LoadedClassifier | None = None,
    class_labels: Tensor | None = None,
    record_trajectory: bool = False,
    progress: ProgressCallback | None = None,
    rows: slice | None = None,
    guide: TrainedModel | None = None,
) -> Iterator[SampleResult]:
    """`generate`'s samples one batch at a time (decoded, on the CPU, checked finite), so that
    a caller can write them as they come and keep memory flat in the number of samples; the
    arguments are `generate`'s."""
    config = config or model.config.sample
    conditioning = Conditioning.of(model, classifier)
    if class_labels is None and not (config.prompt and model.captions):
        class_labels = sample_labels(config, conditioning.num_classes)
    class_labels = network_conditions(model, config, class_labels)
    guide = guide if guide is not None else find_guide(model, config)
    denoiser = sampling_denoiser(model, config, conditioning, guide)
    execution = Execution.of(model.device, config)
    steps = config.steps_for(model.schedule.num_steps)
    first, last, _ = (rows or slice(None)).indices(config.num_samples)
    starts = range(first, last, config.batch_size)
    options = sampler_options(config)  # resolved once, not per batch
    check_sampling_memory(model, min(config.batch_size, max(last - first, 1)), 0)
    calls = SAMPLERS[config.sampler].nfe(steps, **options) * len(starts)
    _expect_calls([model] if guide is None else [model, guide], calls)
    for batch_index, start in enumerate(starts):
        stop = min(start + config.batch_size, last)
        generator = PerSampleGenerator(range(config.seed + start, config.seed + stop), model.device)
        labels = None if class_labels is None else class_labels[start:stop].to(model.device)
        callback = None
        if progress is not None:
            done, total = batch_index * steps, steps * len(starts)
            callback = lambda i, _n, _x, done=done, total=total: progress(done + i, total)  # noqa: E731
        x_T = randn((stop - start, *model.shape), generator, torch.float32, model.device)
        with execution.autocast():
            result = sample(
                config.sampler, denoiser, model.schedule, x_T, steps, grid=config.grid,
                rho=config.rho, timesteps=config.timesteps, generator=generator,
                class_labels=labels, record_trajectory=record_trajectory, callback=callback,
                **options,
            )  # fmt: skip
        decoded = model.decode(result.samples.float().cpu())
        samples = require_finite(decoded, "samples", _nonfinite_cause(config))
        yield dataclasses.replace(result, samples=samples)


def _nonfinite_cause(config: SampleConfig) -> str:
    """What to look at when samples overflow: the options that scale the denoiser's output."""
    return (
        f"the network's outputs overflowed (sampler {config.sampler}, guidance {config.guidance}, "
        f"autoguidance {config.autoguidance}, classifier_scale {config.classifier_scale}, "
        f"precision {config.precision}); lower the guidance scales, try --precision fp32, or "
        "check the weights"
    )


def sampling_denoiser(
    model: TrainedModel,
    config: SampleConfig,
    conditioning: Conditioning,
    guide: TrainedModel | None = None,
) -> Denoiser:
    """The model's denoiser with every configured wrapper, innermost first: autoguidance by
    ``guide``, classifier-free and classifier guidance, then clipping or thresholding of x̂_0.

    With ``config.autoguidance`` ≠ 1 and no ``guide`` (a run's first checkpoint has none) the
    samples are drawn without autoguidance, with a warning.
    """
    denoiser: Denoiser = model.denoiser
    if config.autoguidance != 1.0:
        if guide is None:
            warnings.warn(
                f"{model.checkpoint}: no earlier checkpoint of its run to autoguide with; "
                "sampling without autoguidance (name one with sample.guide)",
                stacklevel=3,
            )
        else:
            denoiser = AutoGuidance(denoiser, guide.denoiser, config.autoguidance)
    return wrap_denoiser(guided_denoiser(denoiser, config, conditioning), config)


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


def check_sampling_memory(model: TrainedModel, batch: int, count: int) -> None:
    """Refuse work that cannot fit before it is drawn: per sample of a batch the state, the
    denoiser's output and two feature maps of the first level's width; and the ``count``
    samples kept and joined at the end (twice their float32 size)."""
    shape = model.shape
    needed = (
        4 * batch * (2 * math.prod(shape) + 2 * first_feature_map_values(model.config.model, shape))
    )
    kept = 8 * count * math.prod(shape)
    where = f"sampling {count} samples of shape {tuple(shape)} in batches of {batch}"
    hint = "lower sample.batch_size (--batch_size) or sample.num_samples (--num_samples)"
    require_memory(needed + kept, where, model.device, hint)


def _expect_calls(models: list[TrainedModel], calls: int) -> None:
    """Tell each model's network compiled with ``sample.compile`` auto how many calls follow, so
    that it times them and compiles where the work pays for it."""
    for model in models:
        network = getattr(model.denoiser, "network", None)
        if isinstance(network, CompiledNetwork):
            network.expect_calls(calls)


def _concatenate(results: list[SampleResult]) -> SampleResult:
    samples = torch.cat([r.samples.float().cpu() for r in results])
    trajectory = None
    if results[0].trajectory is not None:
        steps = zip(*(r.trajectory or [] for r in results), strict=True)
        trajectory = [torch.cat(states) for states in steps]
    calls = sum(r.nfe for r in results)
    return SampleResult(samples, trajectory, calls, results[0].evaluations_per_call)
