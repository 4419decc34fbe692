"""``ddpmkit sample``: a checkpoint -> a PNG grid and an .npz of samples (and the trajectory)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from ddpmkit.cli.options import add_checkpoint, add_device_and_quiet
from ddpmkit.config.parsing import add_config_flags, from_dict, overrides_from_args
from ddpmkit.config.schema import SampleConfig
from ddpmkit.progress import reporter

FORMATS = ("png-folder", "npz-uint8")

if TYPE_CHECKING:
    from ddpmkit.samplers.common import SampleResult
    from ddpmkit.storage.model import TrainedModel
    from ddpmkit.training.distributed import Processes

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
    parser.add_argument(
        "--format",
        choices=FORMATS,
        help="also write the samples for evaluation tools: png-folder (one PNG per sample, in "
        "the folder named like --out without .png; clean-fid and pytorch-fid read it) or "
        "npz-uint8 (arr_0, uint8 NHWC: OpenAI's evaluator format, named <out>-uint8.npz)",
    )
    add_device_and_quiet(parser)
    add_config_flags(parser, SampleConfig, defaults_from="the checkpoint")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ddpmkit.api.model import load
    from ddpmkit.config.execution import Execution
    from ddpmkit.files import partial_path, start_partial_folder
    from ddpmkit.outputs import save_png_folder
    from ddpmkit.storage.diffusers_folders import locate, scheduler_class
    from ddpmkit.training.distributed import Processes

    options = overrides_from_args(args)
    weights: Literal["ema", "model"] | None = None  # the checkpoint's sample.use_ema, unless said
    if "use_ema" in options:
        use_ema = from_dict(SampleConfig, {"use_ema": options["use_ema"]}, "--use_ema").use_ema
        weights = "ema" if use_ema else "model"
    processes = Processes.from_environment()
    model = load(args.checkpoint, processes.device_name(args.device), weights)
    sample = model.sample_config(**options)
    out, npz, uint8, folder = output_paths(args, model, sample)
    rows = shard_rows(sample.num_samples, processes, args.trajectory)
    processes.start(model.device)
    if folder is not None and processes.main:  # filled as FOLDER.partial, renamed when complete
        start_partial_folder(folder)
    processes.barrier()
    say = reporter(processes.main)
    where = f"{processes.world} processes" if processes.distributed else str(model.device)
    say(f"ddpmkit: sampling on {where}, {Execution.of(model.device, sample).describe()}")
    if model.source is not None and model.source.format == "diffusers":
        scheduler = scheduler_class(locate(model.source.folder))
        say(f"ddpmkit: the folder's {scheduler} gave the noise schedule and prediction type; "
            f"sampling with ddpmkit's {sample.sampler}")  # fmt: skip
    start = time.perf_counter()
    quiet = args.quiet or not processes.main
    result = model.draw(
        progress=not quiet, trajectory=args.trajectory is not None, rows=rows, **options
    )
    if folder is not None:  # every process writes its own samples' files
        save_png_folder(result.samples, partial_path(folder), first_index=rows.start or 0)
    if processes.distributed:
        result = gather_shards(result, npz, processes)  # after every process's PNGs
        if not processes.main:
            return 0
    seconds = time.perf_counter() - start
    say(f"ddpmkit: {sample.num_samples} samples {describe_work(result, sample)}, {seconds:.1f} s")
    write_outputs(result, [out, npz, uint8, args.trajectory], folder, sample.num_samples)
    return 0


def write_outputs(
    result: SampleResult, paths: list[Path | None], folder: Path | None, count: int
) -> None:
    """The grid PNG, the .npz, the uint8 .npz and the trajectory (``paths``, None where not
    asked), each written in full before all are renamed into place, then the PNG folder."""
    import torch

    from ddpmkit.files import finish_partial_folder, staged
    from ddpmkit.outputs import grid_count, save_npz, save_npz_uint8, save_picture

    out, npz, uint8, trajectory = paths
    assert out is not None and npz is not None
    trajectory = trajectory if result.trajectory is not None else None
    with staged([p for p in (out, npz, uint8, trajectory) if p is not None]) as names:
        save_picture(result.samples, names[out])
        save_npz(result.samples, names[npz])
        if uint8 is not None:
            save_npz_uint8(result.samples, names[uint8])
        if trajectory is not None and result.trajectory is not None:
            save_npz(torch.stack(result.trajectory, dim=1), names[trajectory])
    if folder is not None:
        finish_partial_folder(folder)
    shown = grid_count(result.samples) if result.samples.ndim == 4 else len(result.samples)
    first = f" (the first {shown} of {count})" if shown < count else ""
    print(f"ddpmkit: samples {out}{first}\nddpmkit: arrays  {npz}")
    if folder is not None:
        print(f"ddpmkit: PNGs    {folder}/ ({count} files)")
    if uint8 is not None:
        print(f"ddpmkit: uint8   {uint8}")
    if trajectory is not None:
        print(f"ddpmkit: trajectory (samples, steps, …) {trajectory}")


def output_paths(
    args: argparse.Namespace, model: TrainedModel, sample: SampleConfig
) -> tuple[Path, Path, Path | None, Path | None]:
    """The PNG, the .npz, the uint8 .npz and the PNG folder to write, checked before sampling."""
    from ddpmkit.outputs import check_outputs

    assert model.checkpoint is not None
    default_out = (
        model.outputs_folder / "samples" / f"{model.checkpoint.name}-seed{sample.seed}.png"
    )
    out = args.out or default_out
    npz = args.npz or out.with_suffix(".npz")
    if args.format is not None and len(model.shape) != 3:
        raise ValueError(f"--format {args.format} writes images; this model draws {model.shape}")
    uint8 = out.with_name(f"{out.stem}-uint8.npz") if args.format == "npz-uint8" else None
    folder = out.with_suffix("") if args.format == "png-folder" else None
    check_outputs(
        {"--out": (out, ".png"), "--npz": (npz, ".npz"), "--trajectory": (args.trajectory, ".npz"),
         "the npz-uint8 file": (uint8, ".npz"), "the png-folder": (folder, "")}
    )  # fmt: skip
    return out, npz, uint8, folder


def describe_work(result: SampleResult, sample: SampleConfig) -> str:
    """The sampler and the network evaluations per sample, every guidance branch counted."""
    batches = -(-sample.num_samples // sample.batch_size)
    calls = result.nfe // batches
    evaluations = calls * result.evaluations_per_call
    per_call = result.evaluations_per_call
    branches = f" ({calls} denoiser calls × {per_call} with guidance)" if per_call > 1 else ""
    return f"by {sample.sampler}: {evaluations} network evaluations per sample{branches}"


def shard_rows(num_samples: int, processes: Processes, trajectory: Path | None) -> slice:
    """This process's contiguous block of the samples (all of them in one process)."""
    if not processes.distributed:
        return slice(None)
    if trajectory is not None:
        raise ValueError("--trajectory is written by one process; sample it without torchrun")
    if num_samples < processes.world:
        raise ValueError(
            f"--num_samples {num_samples} is fewer than the {processes.world} processes"
        )
    block = processes.block(num_samples)
    return slice(block.start, block.stop)


def gather_shards(result: SampleResult, npz: Path, processes: Processes) -> SampleResult:
    """Each process writes its block beside ``npz``; rank 0 joins them in rank order (the
    samples of one process run, seed for seed) and removes the blocks."""
    import numpy as np
    import torch

    from ddpmkit.outputs import save_npz
    from ddpmkit.samplers.common import SampleResult

    shard = npz.with_name(f"{npz.stem}.shard{processes.rank}.npz")
    save_npz(result.samples, shard)
    processes.barrier()
    if not processes.main:
        return result
    shards = [npz.with_name(f"{npz.stem}.shard{rank}.npz") for rank in range(processes.world)]
    samples = torch.cat([torch.from_numpy(np.load(path)["samples"]) for path in shards])
    for path in shards:
        path.unlink()
    return SampleResult(samples, None, result.nfe * processes.world, result.evaluations_per_call)
