"""Are generated digits recognisable? Print the criteria of ddpmkit.evaluation with PASS/FAIL.

    python bench/digits_quality.py SAMPLES.npz|RUN_DIR [--json OUT]  # key "samples"/"x": (N,1,8,8)
    python bench/digits_quality.py --real                    # held-out real digits (sanity check)

Exits 1 when a criterion fails.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ddpmkit.data.digits import digits_arrays
from ddpmkit.evaluation import (
    CONFIDENCE_THRESHOLD,
    DigitsQuality,
    assess_digits,
    train_digits_classifier,
)

SAMPLE_KEYS = ("samples", "x")


def load_samples(path: Path) -> torch.Tensor:
    """Samples (N, 1, 8, 8) from an .npz file (key "samples" or "x"), or a run folder's latest."""
    if path.is_dir():
        found = sorted((path / "samples").glob("step-*.npz"))
        if not found:
            raise SystemExit(f"{path}: no samples/step-*.npz in this run folder")
        path = found[-1]
        print(f"samples: {path}")
    with np.load(path) as archive:
        for key in SAMPLE_KEYS:
            if key in archive:
                return torch.from_numpy(np.asarray(archive[key], dtype=np.float32))
        raise SystemExit(f"{path}: no key {' or '.join(SAMPLE_KEYS)} (found {archive.files})")


def criteria_rows(report: DigitsQuality, args: argparse.Namespace) -> list[tuple[str, ...]]:
    """(criterion, value, requirement, PASS/FAIL) for each criterion."""
    low, high = args.class_range
    shares = report.class_shares
    checks = [
        (
            f"confident share (p >= {CONFIDENCE_THRESHOLD})",
            f"{report.confident_share:.3f}",
            f">= {args.min_confident}",
            report.confident_share >= args.min_confident,
        ),
        (
            "class shares (min..max)",
            f"{shares.min():.3f}..{shares.max():.3f}",
            f"in [{low}, {high}]",
            bool(((shares >= low) & (shares <= high)).all()),
        ),
        (
            "digits-feature FID ratio (samples / reference)",
            f"{report.fid_ratio:.2f}",
            f"<= {args.max_fid_ratio}",
            report.fid_ratio <= args.max_fid_ratio,
        ),
    ]
    return [(name, value, need, "PASS" if ok else "FAIL") for name, value, need, ok in checks]


def print_report(report: DigitsQuality, args: argparse.Namespace, train_seconds: float) -> None:
    rows = [("criterion", "value", "requirement", "result"), *criteria_rows(report, args)]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    print()
    print(f"samples                     {report.n}")
    print("class shares (0..9)         " + " ".join(f"{s:.3f}" for s in report.class_shares))
    print(f"digits-feature FID, samples vs held-out   {report.fid:.3f} (not Inception FID)")
    print(f"digits-feature FID, training vs held-out  {report.reference_fid:.3f}")
    print(f"held-out accuracy           {report.heldout_accuracy:.3f}")
    print(f"held-out confident share    {report.heldout_confident_share:.3f}")
    print(f"classifier training         {train_seconds:.1f} s (seed {args.seed})")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "samples", nargs="?", type=Path, help=".npz with key 'samples' or 'x', or a run folder"
    )
    source.add_argument("--real", action="store_true", help="judge the held-out real digits")
    parser.add_argument("--json", type=Path, metavar="OUT", help="also write the report here")
    parser.add_argument("--seed", type=int, default=0, help="seed of the classifier (default 0)")
    parser.add_argument(
        "--min-confident", type=float, default=0.85, help="least confident share (default 0.85)"
    )
    parser.add_argument(
        "--class-range",
        type=float,
        nargs=2,
        default=(0.05, 0.15),
        metavar=("LOW", "HIGH"),
        help="allowed share of every class (default 0.05 0.15)",
    )
    parser.add_argument(
        "--max-fid-ratio", type=float, default=3.0, help="largest FID / reference FID (default 3)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    samples = digits_arrays("heldout")[0] if args.real else load_samples(args.samples)
    start = time.perf_counter()
    classifier = train_digits_classifier(seed=args.seed)
    train_seconds = time.perf_counter() - start
    report = assess_digits(samples, classifier)
    print_report(report, args, train_seconds)
    thresholds = (args.min_confident, tuple(args.class_range), args.max_fid_ratio)
    failures = report.failures(*thresholds)
    for failure in failures:
        print(f"FAIL: {failure}")
    if args.json is not None:
        out = {
            **report.to_dict(),
            "passes": not failures,
            "failures": failures,
            "thresholds": {
                "confidence": CONFIDENCE_THRESHOLD,
                "min_confident": args.min_confident,
                "class_range": list(args.class_range),
                "max_fid_ratio": args.max_fid_ratio,
            },
            "source": "heldout" if args.real else str(args.samples),
            "classifier_seed": args.seed,
        }
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
