"""Guided generation: classifier-free, classifier and autoguidance as denoiser wrappers, and the
time-aware (noisy) classifier p_φ(y|x_t, t) classifier guidance is steered by."""

from ddpmkit.guidance.wrappers import (
    AutoGuidance,
    Classifier,
    ClassifierFreeGuidance,
    ClassifierGuidance,
    classifier_on_sigma,
)

__all__ = [
    "AutoGuidance",
    "Classifier",
    "ClassifierFreeGuidance",
    "ClassifierGuidance",
    "classifier_on_sigma",
]
