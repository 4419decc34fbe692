"""What a model is conditioned on: in sampling, the model's classes and ∅, a noisy classifier, and
the class labels or prompt tokens each sample gets; in training, each image's label or caption,
dropped to ∅ for classifier-free guidance."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ddpmkit.config.builders import class_labels_of
from ddpmkit.config.schema import SampleConfig
from ddpmkit.core.randomness import BatchShard, rand_rows
from ddpmkit.guidance import Classifier, classifier_on_sigma
from ddpmkit.storage.classifier_folders import LoadedClassifier
from ddpmkit.storage.model import TrainedModel


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


def training_conditions(
    model: TrainedModel, labels: Tensor, generator: torch.Generator | BatchShard
) -> Tensor | None:
    """What the network is conditioned on in training: the batch's labels, or for a
    text-conditional model a caption of each with a random template, each replaced by ∅ with
    probability model.label_dropout (Ho & Salimans 2022, Algorithm 1); None for an
    unconditional model."""
    config = model.config.model
    if not (config.class_conditional or config.text_conditional):
        return None
    captions = model.captions
    if captions is not None:
        labels = captions.tokens(labels, captions.draw_template(rand_rows(len(labels), generator)))
    _, null = class_labels_of(config)
    if null is None:
        return labels
    drop = rand_rows(len(labels), generator)
    if captions is not None:
        drop = drop[:, None]
    return torch.where(drop < config.label_dropout, torch.full_like(labels, null), labels)
