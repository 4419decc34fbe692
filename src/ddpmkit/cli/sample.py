"""``ddpmkit sample``: a checkpoint -> a PNG grid and an .npz of samples (and the trajectory)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ddpmkit.cli.options import add_checkpoint, add_device_and_quiet
from ddpmkit.cli.progress import ProgressBar
from ddpmkit.config.parsing import add_config_flags, from_dict, merge, overrides_from_args, to_dict
from ddpmkit.config.schema import SampleConfig

DESCRIPTION = (
    "Draw samples from a checkpoint (or a run folder's latest checkpoint). Sample options "
    "default to those stored with the checkpoint."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_checkpoint(parser)
    parser.add_argument(
        "--out", type=Path, help="output PNG (default: <run>/samples/<ckpt>-seed<S>.png)"
    )
    parser.add_argument(
        "--npz", type=Path, help="also write the samples here (default: beside --out)"
    )
    parser.add_argument(
        "--trajectory", type=Path, help="write the trajectory x_T … x_0 to this .npz"
    )
    add_device_and_quiet(parser)
    add_config_flags(parser, SampleConfig, defaults_from="the checkpoint")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from ddpmkit.core.precision import describe_precision
    from ddpmkit.outputs import check_outputs, save_npz, save_picture
    from ddpmkit.pipeline.classifier import load_classifier
    from ddpmkit.pipeline.generation import generate
    from ddpmkit.pipeline.model import load_model

    overrides = overrides_from_args(args)
    which = None  # the weights the checkpoint's sample.use_ema names, unless the flag says
    if "use_ema" in overrides:
        use_ema = from_dict(SampleConfig, {"use_ema": overrides["use_ema"]}, "--use_ema").use_ema
        which = "ema" if use_ema else "model"
    model = load_model(args.checkpoint, args.device, which)
    sample = from_dict(
        SampleConfig, merge(to_dict(model.config.sample), overrides), "sample options"
    )
    model = model.with_sample(sample)
    assert model.checkpoint is not None
    default_out = (
        model.checkpoint.parent.parent
        / "samples"
        / f"{model.checkpoint.name}-seed{sample.seed}.png"
    )
    out = args.out or default_out
    npz = args.npz or out.with_suffix(".npz")
    check_outputs(
        {"--out": (out, ".png"), "--npz": (npz, ".npz"), "--trajectory": (args.trajectory, ".npz")}
    )
    classifier = load_classifier(sample.classifier) if sample.classifier is not None else None
    print(
        f"ddpmkit: sampling on {model.device}, {describe_precision(sample.precision, model.device)}"
    )
    start = time.perf_counter()
    with ProgressBar("sample", "step", disable=args.quiet) as progress:
        result = generate(
            model, sample, classifier=classifier, record_trajectory=args.trajectory is not None,
            progress=progress,
        )  # fmt: skip
    seconds = time.perf_counter() - start
    batches = -(-sample.num_samples // sample.batch_size)
    calls = f" ({result.nfe} network calls in {batches} batches)" if batches > 1 else ""
    print(
        f"ddpmkit: {sample.num_samples} samples by {sample.sampler}: "
        f"{result.nfe // batches} NFE per sample{calls}, {seconds:.1f} s"
    )
    print(f"ddpmkit: samples {save_picture(result.samples, out)}")
    print(f"ddpmkit: arrays  {save_npz(result.samples, npz)}")
    if args.trajectory is not None and result.trajectory is not None:
        save_npz(torch.stack(result.trajectory, dim=1), args.trajectory)
        print(f"ddpmkit: trajectory (samples, steps, …) {args.trajectory}")
    return 0
