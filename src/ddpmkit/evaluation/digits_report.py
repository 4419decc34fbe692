"""Are generated 8×8 digits recognisable? Confidence, class balance and feature-space FID.

A classifier trained on the real 'train' digits judges the samples:
(i) the share of samples it classifies with confidence (max softmax probability) ≥ 0.9;
(ii) the share of each class among the samples' argmax labels;
(iii) the Fréchet distance between its penultimate features of the samples and of the
held-out digits, relative to the same distance between the training and held-out digits.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import Tensor

from ddpmkit.data.digits import digits_arrays
from ddpmkit.evaluation.digits_classifier import DigitsClassifier, train_digits_classifier
from ddpmkit.evaluation.fid import frechet_distance

CONFIDENCE_THRESHOLD = 0.9
"""A sample counts as confidently classified when its max softmax probability reaches this."""
MIN_CONFIDENT = 0.85
CLASS_RANGE = (0.05, 0.15)
MAX_FID_RATIO = 3.0
_CHUNK = 4096


@dataclass(frozen=True, eq=False)
class DigitsQuality:
    """Figures of a set of samples, judged by a DigitsClassifier.

    `failures` names each failed criterion first: "confident share", "class shares" or "FID ratio".
    """

    n: int  # number of samples
    confident_share: float  # share of samples with max softmax probability ≥ CONFIDENCE_THRESHOLD
    class_shares: np.ndarray  # (10,) share of each digit among the samples' argmax labels
    fid: float  # feature-space FID, samples vs held-out digits
    reference_fid: float  # feature-space FID, training digits vs held-out digits
    fid_ratio: float  # fid / reference_fid
    heldout_confident_share: float  # confident share of the real held-out digits
    heldout_accuracy: float  # classifier accuracy on the real held-out digits

    def failures(
        self,
        min_confident: float = MIN_CONFIDENT,
        class_range: tuple[float, float] = CLASS_RANGE,
        max_fid_ratio: float = MAX_FID_RATIO,
    ) -> list[str]:
        """One line per failed criterion; empty when all pass."""
        found = []
        if self.confident_share < min_confident:
            found.append(
                f"confident share {self.confident_share:.3f} < {min_confident:.3f} "
                f"(held-out real digits: {self.heldout_confident_share:.3f})"
            )
        low, high = class_range
        outside = [
            f"{digit}: {share:.3f}"
            for digit, share in enumerate(self.class_shares)
            if not low <= share <= high
        ]
        if outside:
            found.append(f"class shares outside [{low:.3f}, {high:.3f}]: " + ", ".join(outside))
        if not self.fid_ratio <= max_fid_ratio:
            found.append(
                f"FID ratio {self.fid_ratio:.2f} > {max_fid_ratio:.2f} "
                f"(FID {self.fid:.3f}, reference {self.reference_fid:.3f})"
            )
        return found

    def passes(
        self,
        min_confident: float = MIN_CONFIDENT,
        class_range: tuple[float, float] = CLASS_RANGE,
        max_fid_ratio: float = MAX_FID_RATIO,
    ) -> bool:
        """Whether every criterion holds."""
        return not self.failures(min_confident, class_range, max_fid_ratio)

    def to_dict(self) -> dict[str, float | int | list[float]]:
        """Plain JSON-ready values."""
        values = asdict(self)
        values["class_shares"] = [float(share) for share in self.class_shares]
        return values


@torch.no_grad()
def _logits_and_features(classifier: DigitsClassifier, images: Tensor) -> tuple[Tensor, Tensor]:
    """Logits (N, 10) and penultimate features (N, D), computed in chunks."""
    logits, features = [], []
    for chunk in torch.split(images, _CHUNK):
        chunk_features = classifier.features(chunk)
        features.append(chunk_features)
        logits.append(classifier.head(chunk_features))
    return torch.cat(logits), torch.cat(features)


def _confident_share(logits: Tensor) -> float:
    return (logits.softmax(-1).amax(-1) >= CONFIDENCE_THRESHOLD).double().mean().item()


def assess_digits(samples: Tensor, classifier: DigitsClassifier | None = None) -> DigitsQuality:
    """Judge samples (N, 1, 8, 8) in [-1, 1] (clamped first) with `classifier`.

    Without a classifier, one is trained with seed 0 (a few seconds); pass one to reuse it.
    """
    if samples.ndim != 4 or tuple(samples.shape[1:]) != (1, 8, 8) or len(samples) < 2:
        raise ValueError(f"samples must have shape (N >= 2, 1, 8, 8), got {tuple(samples.shape)}")
    if classifier is None:
        classifier = train_digits_classifier(seed=0)
    samples = samples.detach().to("cpu", torch.float32).clamp(-1, 1)
    train_images, _ = digits_arrays("train")
    heldout_images, heldout_labels = digits_arrays("heldout")

    logits, features = _logits_and_features(classifier, samples)
    heldout_logits, heldout_features = _logits_and_features(classifier, heldout_images)
    _, train_features = _logits_and_features(classifier, train_images)

    counts = torch.bincount(logits.argmax(-1), minlength=10).double()
    fid = frechet_distance(features.numpy(), heldout_features.numpy())
    reference_fid = frechet_distance(train_features.numpy(), heldout_features.numpy())
    heldout_accuracy = (heldout_logits.argmax(-1) == heldout_labels).double().mean().item()
    return DigitsQuality(
        n=len(samples),
        confident_share=_confident_share(logits),
        class_shares=(counts / len(samples)).numpy(),
        fid=fid,
        reference_fid=reference_fid,
        fid_ratio=fid / reference_fid,
        heldout_confident_share=_confident_share(heldout_logits),
        heldout_accuracy=heldout_accuracy,
    )
