"""Guidance scale against label agreement, diversity and FID on the digits, for both guidance kinds.

    python bench/guidance.py --cfg_run RUN --classifier_run RUN --classifier FOLDER \
        [--cfg_scales 0 1 2 3 5] [--classifier_scales 0 1 2 4 8] [--per_class 20] [--out F.md]

Classifier-free guidance uses a class-conditional run trained with label dropout; classifier
guidance an unconditional run and a noisy classifier (``ddpmkit train-classifier``). Samples cycle
through the ten classes; a CNN trained on the real training digits (``ddpmkit.evaluation``)
judges them: label agreement (its arg-max equals the requested class), confident share, the
spread of its features within each class it assigns, relative to that of real held-out digits
(diversity; 1 = as varied as real digits of one class), and the
feature-space FID to held-out digits divided by train↔held-out FID.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from ddpmkit.config.schema import SampleConfig
from ddpmkit.data.digits import digits_arrays
from ddpmkit.evaluation import assess_digits, train_digits_classifier
from ddpmkit.evaluation.digits_classifier import DigitsClassifier
from ddpmkit.generation.sampling import generate
from ddpmkit.storage.classifier_folders import LoadedClassifier, load_classifier
from ddpmkit.storage.model import TrainedModel, load_model


@torch.no_grad()
def class_spread(judge: DigitsClassifier, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean over classes (with ≥ 2 images) of the total feature variance within the class."""
    features = judge.features(images.clamp(-1, 1))
    spreads = [
        features[labels == k].var(dim=0).sum() for k in labels.unique() if (labels == k).sum() > 1
    ]
    return float(torch.stack(spreads).mean())


def row(
    model: TrainedModel,
    classifier: LoadedClassifier | None,
    config: SampleConfig,
    judge: DigitsClassifier,
    real_spread: float,
) -> tuple[str, ...]:
    start = time.perf_counter()
    samples = generate(model, config, classifier=classifier).samples
    seconds = time.perf_counter() - start
    labels = torch.arange(len(samples)) % 10
    with torch.no_grad():
        predicted = judge(samples.clamp(-1, 1)).argmax(-1)
    agreement = (predicted == labels).double().mean().item()
    quality = assess_digits(samples, judge)
    diversity = class_spread(judge, samples, predicted) / real_spread
    return (
        f"{agreement:.3f}", f"{quality.confident_share:.3f}", f"{diversity:.2f}",
        f"{quality.fid_ratio:.2f}", f"{seconds:.0f}",
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cfg_run", type=Path, required=True)
    parser.add_argument("--classifier_run", type=Path, required=True)
    parser.add_argument("--classifier", type=Path, required=True)
    parser.add_argument("--cfg_scales", type=float, nargs="+", default=[0, 1, 2, 3, 5])
    parser.add_argument("--classifier_scales", type=float, nargs="+", default=[0, 1, 2, 4, 8])
    parser.add_argument("--per_class", type=int, default=40)
    parser.add_argument("--sampler", default="dpm++2m")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks-guidance.md"))
    args = parser.parse_args()
    judge = train_digits_classifier(seed=0)
    real, real_labels = digits_arrays("heldout")
    real_spread = class_spread(judge, real, real_labels)
    base = SampleConfig(
        sampler=args.sampler, steps=args.steps, num_samples=10 * args.per_class, batch_size=500
    )
    lines = [
        f"{args.per_class} samples per class, {args.sampler}, {args.steps} steps.",
        "",
        "| guidance | scale | label agreement | confident share | diversity | FID ratio | s |",
        "|---|---|---|---|---|---|---|",
    ]
    cfg = load_model(args.cfg_run)
    for scale in args.cfg_scales:
        config = SampleConfig(**{**base.__dict__, "guidance": scale})
        cells = row(cfg, None, config, judge, real_spread)
        lines.append(f"| classifier-free | {scale:g} | " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    unconditional = load_model(args.classifier_run)
    classifier = load_classifier(args.classifier)
    for scale in args.classifier_scales:
        config = SampleConfig(**{**base.__dict__, "classifier_scale": scale})
        cells = row(unconditional, classifier, config, judge, real_spread)
        lines.append(f"| classifier | {scale:g} | " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
