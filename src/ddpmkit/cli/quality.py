"""``ddpmkit eval --metrics fid,is,kid,prdc``: Inception-v3 metrics of a model's samples
(`ddpmkit.Model.quality`), printed and written to a JSON report."""

from __future__ import annotations

import argparse
import json


def run_metrics(args: argparse.Namespace) -> int:
    from ddpmkit.api.model import load
    from ddpmkit.evaluation.fidelity import requires_fidelity
    from ddpmkit.files import write_text_atomically
    from ddpmkit.outputs import check_outputs

    requires_fidelity()
    model = load(args.checkpoint, args.device)
    assert model.checkpoint is not None
    out = args.out or model.outputs_folder / "eval" / f"{model.checkpoint.name}-metrics.json"
    check_outputs({"--out": (out, ".json")})
    report = model.quality(
        args.metrics, args.reference, num_samples=args.num_samples, samples=args.samples,
        inception_weights=args.inception_weights, batch_size=args.batch_size, seed=args.seed,
        progress=not args.quiet,
    )  # fmt: skip
    record = {
        "checkpoint": str(model.checkpoint),
        "samples": str(args.samples or f"{report.num_samples} generated"),
        "num_samples": report.num_samples,
        "reference": args.reference,
        "num_reference": report.num_reference,
        "inception_weights": str(args.inception_weights or "torch-fidelity download"),
        "metrics": report.metrics,
        "seconds": report.seconds,
    }
    for name, value in report.metrics.items():
        print(f"ddpmkit: {name:10s} {value:.4f}")
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomically(out, json.dumps(record, indent=2) + "\n", overwrite=True)
    print(f"ddpmkit: report {out}")
    return 0
