"""The ``ddpmkit inpaint``, ``restore`` and ``edit`` commands: an image file in, a PNG panel out."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch.nn.functional as F

from ddpmkit.api.model import load
from ddpmkit.cli.options import add_checkpoint, add_device_and_quiet, at_least, finite_float
from ddpmkit.evaluation.restoration_metrics import psnr, ssim
from ddpmkit.outputs import check_outputs
from ddpmkit.pipeline.restoration import METHODS, Task, read_image, save_panel
from ddpmkit.samplers import SAMPLERS
from ddpmkit.storage.model import ModelSource

MASK_HELP = (
    "black-and-white PNG of the model's size: white (>= 128) marks the known pixels to keep, "
    "black the region to fill in (RePaint's convention; see --invert_mask)"
)


INPAINT = (
    "Fill in the black region of --mask in --image with a trained model. Writes one PNG: the "
    "image, the masked image, then the --num_samples restorations."
)
RESTORE = (
    "Degrade --image by the task's operator A (2×2 block means, a Gaussian blur, a mask), add "
    "--noise_std noise, and restore it by posterior sampling. --image is the full-resolution image "
    "(the ground truth shown beside the results), or give --low_res. Writes one PNG: the image, "
    "the measurement (up-sampled nearest), the restorations."
)
EDIT = (
    "Noise --image to t_0 = strength·T and sample back to an image (SDEdit): low strength stays "
    "close to the input, high strength follows the model."
)


def add_inpaint(parser: argparse.ArgumentParser) -> None:
    """``ddpmkit inpaint``: fill in the masked region of an image."""
    _add_common(parser, "inpaint")
    _add_mask(parser, required=True)
    parser.add_argument(
        "--method", choices=METHODS["inpaint"], default="replacement", help="inpainting method"
    )
    _add_inverse(parser)
    parser.set_defaults(run=run_inpaint)


def add_restore(parser: argparse.ArgumentParser) -> None:
    """``ddpmkit restore``: super-resolution, deblurring or inpainting by posterior sampling."""
    _add_common(parser, "<task>", image_required=False)
    parser.add_argument(
        "--task",
        choices=("super-resolution", "deblur", "inpaint"),
        required=True,
        help="the degradation to undo",
    )
    parser.add_argument(
        "--method",
        help="inpaint: replacement (default), repaint, dps, ddrm or pigdm; others: dps (default), "
        "ddrm or pigdm",
    )
    parser.add_argument("--scale", type=at_least(2), default=2, help="super-resolution factor")
    parser.add_argument(
        "--low_res",
        type=Path,
        help="super-resolution of an already small image (size H/scale × W/scale) instead of "
        "--image; it is shown enlarged (nearest) in the input column",
    )
    parser.add_argument(
        "--blur_sigma", type=finite_float, default=1.0, help="deblur: the blur's std"
    )
    _add_mask(parser, required=False)
    _add_inverse(parser)
    parser.set_defaults(run=run_restore)


def add_edit(parser: argparse.ArgumentParser) -> None:
    """``ddpmkit edit``: SDEdit, image-to-image."""
    _add_common(parser, "edit")
    parser.add_argument("--strength", type=finite_float, default=0.5, help="t_0/T, in [0, 1]")
    parser.add_argument(
        "--sampler", choices=sorted(SAMPLERS), default="ancestral", help="sampler from t_0"
    )
    parser.set_defaults(run=run_edit)


def _add_common(parser: argparse.ArgumentParser, task: str, image_required: bool = True) -> None:
    add_checkpoint(parser)
    parser.add_argument(
        "--image",
        type=Path,
        required=image_required,
        help="PNG or JPEG of exactly the model's size (not resized), converted to its channels",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help=f"output PNG (default: <run>/restorations/{task}-<image>-seed<S>.png); never "
        "overwritten",
    )
    parser.add_argument(
        "--steps", type=at_least(1), help="ancestral steps on the T training steps (default: all T)"
    )
    parser.add_argument("--seed", type=int, default=0, help="restoration i uses seed + i")
    parser.add_argument("--num_samples", type=at_least(1), default=1, help="restorations to draw")
    add_device_and_quiet(parser)


def _add_mask(parser: argparse.ArgumentParser, required: bool) -> None:
    parser.add_argument("--mask", type=Path, required=required, help=MASK_HELP)
    parser.add_argument(
        "--invert_mask",
        action="store_true",
        help="white marks the region to fill in (the diffusers / LaMa convention)",
    )


def _add_inverse(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--noise_std",
        type=finite_float,
        default=0.0,
        help="std of the noise added to the measurement",
    )
    parser.add_argument("--step_size", type=finite_float, default=1.0, help="dps: the step ζ")
    parser.add_argument("--jump_length", type=at_least(1), default=10, help="repaint: j")
    parser.add_argument("--resamplings", type=at_least(1), default=10, help="repaint: r")


def run_inpaint(args: argparse.Namespace) -> int:
    return _run(args, "inpaint", method=args.method, **_inverse_options(args))


def run_restore(args: argparse.Namespace) -> int:
    if (args.image is None) == (args.low_res is None):
        raise ValueError("give exactly one of --image and --low_res")
    if args.low_res is not None and args.task != "super-resolution":
        raise ValueError("--low_res is only for --task super-resolution")
    return _run(
        args, args.task, method=args.method, scale=args.scale, blur_sigma=args.blur_sigma,
        **_inverse_options(args),
    )  # fmt: skip


def run_edit(args: argparse.Namespace) -> int:
    return _run(args, "edit", strength=args.strength, sampler=args.sampler)


def _inverse_options(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "noise_std": args.noise_std,
        "step_size": args.step_size,
        "jump_length": args.jump_length,
        "resamplings": args.resamplings,
    }


def _run(args: argparse.Namespace, task: Task, **options: Any) -> int:
    """Read the files, restore, write the panel and print its path and the scores."""
    model_source = ModelSource.find(args.checkpoint)
    source = args.image or args.low_res
    out = args.out or (
        model_source.outputs_folder / "restorations" / f"{task}-{source.stem}-seed{args.seed}.png"
    )
    check_outputs({"--out": (out, ".png")})
    model = load(model_source, args.device)
    image = args.image
    if image is None:
        channels, height, width = model.shape
        if args.scale < 1 or height % args.scale or width % args.scale:
            raise ValueError(f"--scale {args.scale} must divide the model's size {height}×{width}")
        small = read_image(args.low_res, (channels, height // args.scale, width // args.scale))
        image = F.interpolate(small[None], scale_factor=args.scale, mode="nearest")[0]
    mask = getattr(args, "mask", None)
    restoration = model.restore(
        image, task, mask=mask, invert_mask=getattr(args, "invert_mask", False),
        steps=args.steps, num_samples=args.num_samples, seed=args.seed,
        progress=not args.quiet, **options,
    )  # fmt: skip
    print(f"ddpmkit: restorations {save_panel(restoration, out)}")
    if args.image is not None:
        result = restoration.result[0]
        reference = restoration.input.expand_as(result)
        print(
            f"ddpmkit: against {source.name}: PSNR {psnr(result, reference).mean():.2f} dB, "
            f"SSIM {ssim(result, reference).mean():.3f} (mean of {len(result)})"
        )
    return 0
