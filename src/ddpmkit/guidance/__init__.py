"""Conditional generation: classifier-free and classifier guidance as denoiser wrappers, and the
time-aware (noisy) classifier p_φ(y|x_t, t) they can be steered by."""

from ddpmkit.guidance.wrappers import (
    Classifier,
    ClassifierFreeGuidance,
    ClassifierGuidance,
    classifier_on_sigma,
)

__all__ = ["Classifier", "ClassifierFreeGuidance", "ClassifierGuidance", "classifier_on_sigma"]
