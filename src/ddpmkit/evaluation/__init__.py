"""Judging generated samples: a calibrated digits classifier and feature-space FID."""

from ddpmkit.evaluation.digits_classifier import DigitsClassifier, train_digits_classifier
from ddpmkit.evaluation.digits_report import CONFIDENCE_THRESHOLD, DigitsQuality, assess_digits
from ddpmkit.evaluation.fid import frechet_distance

__all__ = [
    "CONFIDENCE_THRESHOLD",
    "DigitsClassifier",
    "DigitsQuality",
    "assess_digits",
    "frechet_distance",
    "train_digits_classifier",
]
