"""``ddpmkit eval --metrics fid,is,kid,prdc``: Inception-v3 metrics of a model's samples."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from ddpmkit.evaluation.fidelity import InceptionFeatures
    from ddpmkit.pipeline.quality import ImageSet
    from ddpmkit.progress import ProgressBar


def run_metrics(args: argparse.Namespace) -> int:
    import dataclasses

    import torch

    from ddpmkit.evaluation.fidelity import (
        check_inception_weights,
        inception_features,
        requires_fidelity,
        sample_metrics,
    )
    from ddpmkit.generation.sampling import generate
    from ddpmkit.outputs import check_outputs
    from ddpmkit.pipeline.quality import (
        ImageSet,
        image_set,
        read_statistics,
        uint8_batches,
    )
    from ddpmkit.progress import ProgressBar
    from ddpmkit.storage.model import load_model

    requires_fidelity()
    start = time.perf_counter()
    weights = None
    if args.inception_weights is not None:
        weights = check_inception_weights(args.inception_weights)
    model = load_model(args.checkpoint, args.device)
    assert model.checkpoint is not None
    out = args.out or model.outputs_folder / "eval" / f"{model.checkpoint.name}-metrics.json"
    check_outputs({"--out": (out, ".json")})
    statistics = read_statistics(Path(args.reference))
    reference = None
    if statistics is None:
        reference = image_set(args.reference, model.shape, None, model.training_data)
    device = model.device
    with ProgressBar("inception", "image", disable=args.quiet) as progress:
        target = (
            statistics
            if statistics is not None
            else reference_features(reference, weights, args.batch_size, device, progress)
        )
        if args.samples is not None:
            generated = image_set(str(args.samples), model.shape, args.num_samples)
        else:
            sample = dataclasses.replace(model.config.sample, num_samples=args.num_samples)
            with ProgressBar("sample", "step", disable=args.quiet) as sampling:
                drawn = generate(model, sample, progress=sampling).samples
            dataset = torch.utils.data.TensorDataset(drawn, torch.zeros(len(drawn)))
            generated = ImageSet(dataset, len(drawn), "generated")
        batches = uint8_batches(generated, args.batch_size)
        ours = inception_features(batches, generated.count, weights, device, progress)
    values = sample_metrics(args.metrics, ours, target, seed=args.seed)
    report = {
        "checkpoint": str(model.checkpoint),
        "samples": str(args.samples or f"{generated.count} generated"),
        "num_samples": generated.count,
        "reference": args.reference,
        "num_reference": None if reference is None else reference.count,
        "inception_weights": str(weights or "torch-fidelity download"),
        "metrics": values,
        "seconds": time.perf_counter() - start,
    }
    for name, value in values.items():
        print(f"ddpmkit: {name:10s} {value:.4f}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"ddpmkit: report {out}")
    return 0


def reference_features(
    reference: ImageSet | None,
    weights: Path | None,
    batch_size: int,
    device: torch.device,
    progress: ProgressBar,
) -> InceptionFeatures:
    """The Inception features of the reference images, from the cache when computed before."""
    from ddpmkit.evaluation.fidelity import inception_features
    from ddpmkit.pipeline.quality import cached_features, store_features, uint8_batches

    if reference is None:
        raise ValueError("the metrics need a reference: statistics or images")
    key = f"{reference.identity}:{'download' if weights is None else weights.name}"
    features = cached_features(key)
    if features is None:
        batches = uint8_batches(reference, batch_size)
        features = inception_features(batches, reference.count, weights, device, progress)
        store_features(key, features)
    return features
