"""``ddpmkit sample``: a checkpoint -> a PNG grid and an .npz of samples (and the trajectory)."""

from __future__ import annotations

import argparse
import contextlib
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ddpmkit.cli.options import add_checkpoint, add_device_and_quiet
from ddpmkit.config.parsing import add_config_flags, from_dict, overrides_from_args
from ddpmkit.config.schema import SampleConfig
from ddpmkit.progress import reporter

FORMATS = ("png-folder", "npz-uint8")

if TYPE_CHECKING:
    from collections.abc import Callable

    from torch import Tensor

    from ddpmkit.api.model import Model
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
    from ddpmkit.files import start_partial_folder
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
    paths = [out, npz, uint8, args.trajectory]
    streamed = not processes.distributed and args.trajectory is None
    if streamed:  # each batch written as it comes: memory stays one batch
        result = stream_outputs(model, options, paths, folder, sample.num_samples, quiet)
    else:  # joined from the processes' shards, or with its trajectory: kept whole
        kept = draw_whole(model, options, rows, folder, npz, processes, quiet, args.trajectory)
        if kept is None:
            return 0
        result = kept
    seconds = time.perf_counter() - start
    say(f"ddpmkit: {sample.num_samples} samples {describe_work(result, sample)}, {seconds:.1f} s")
    if not streamed:
        write_outputs(result, paths, sample.num_samples)
    report_outputs(result, paths, folder, sample.num_samples)
    return 0


def draw_whole(
    model: Model, options: dict[str, Any], rows: slice, folder: Path | None, npz: Path,
    processes: Processes, quiet: bool, trajectory: Path | None,
) -> SampleResult | None:  # fmt: skip
    """This process's samples in memory, its PNGs written into the folder; under torchrun the
    main process's result joins every shard (None on the other processes)."""
    from ddpmkit.files import partial_path
    from ddpmkit.outputs import save_png_folder

    result = model.draw(progress=not quiet, trajectory=trajectory is not None, rows=rows, **options)
    if folder is not None:  # every process writes its own samples' files
        save_png_folder(result.samples, partial_path(folder), first_index=rows.start or 0)
    if processes.distributed:
        result = gather_shards(result, npz, processes)  # after every process's PNGs
        if not processes.main:
            return None
    return result


def stream_outputs(
    model: Model, options: dict[str, Any], paths: list[Path | None], folder: Path | None,
    count: int, quiet: bool,
) -> SampleResult:  # fmt: skip
    """Draw batch by batch and write each as it comes: the .npz (and uint8 .npz) streamed, the
    PNGs into the folder, the grid from the first samples; returns the grid's samples and the
    evaluations. The files appear together when complete (`ddpmkit.files.staged`)."""
    import torch

    from ddpmkit.files import partial_path, staged
    from ddpmkit.outputs import GRID_IMAGES, GRID_POINTS, save_picture, save_png_folder
    from ddpmkit.samplers.common import SampleResult

    out, npz, uint8, _ = paths
    assert out is not None and npz is not None
    kept: list[torch.Tensor] = []
    nfe, per_call, written = 0, 1, 0
    with contextlib.ExitStack() as stack:
        names = stack.enter_context(staged([p for p in (out, npz, uint8) if p is not None]))
        writers: list[Callable[[torch.Tensor], None]] = []
        for batch in model.draw_batches(progress=not quiet, **options):
            samples = batch.samples
            if not writers:  # the shape written is the first batch's (a latent model's images)
                writers = _array_writers(stack, [names[npz], uint8 and names[uint8]], count,
                                         tuple(samples.shape[1:]), folder)  # fmt: skip
            for write in writers:
                write(samples)
            if folder is not None:
                save_png_folder(samples, partial_path(folder), first_index=written)
            written, nfe, per_call = (
                written + len(samples),
                nfe + batch.nfe,
                batch.evaluations_per_call,
            )
            limit = GRID_IMAGES if samples.ndim == 4 else GRID_POINTS
            if sum(map(len, kept)) < limit:
                kept.append(samples[:limit])
        grid = torch.cat(kept)
        save_picture(grid, names[out])
    return SampleResult(grid, None, nfe, per_call)


def _array_writers(
    stack: contextlib.ExitStack[Any], files: list[Path | None], count: int,
    shape: tuple[int, ...], folder: Path | None,
) -> list[Callable[[Tensor], None]]:  # fmt: skip
    """Check the disk, then open the streamed .npz (``files[0]``) and uint8 .npz (``files[1]``,
    if any) for ``count`` samples of ``shape``; returns their per-batch writers."""
    import numpy as np

    from ddpmkit.data import to_uint8_images
    from ddpmkit.files import require_disk_space
    from ddpmkit.outputs import npz_stream

    arrays, uint8 = files
    assert arrays is not None
    per_value = 4 + (uint8 is not None) + (folder is not None)  # float32, uint8, PNG (about)
    require_disk_space(arrays.parent, count * math.prod(shape) * per_value,
                       f"{count} samples of shape {shape}", "lower --num_samples")  # fmt: skip
    put = stack.enter_context(npz_stream(arrays, "samples", (count, *shape), np.float32))
    writers: list[Callable[[Tensor], None]] = [lambda samples: put(samples.numpy())]
    if uint8 is not None:
        pixels = (count, *shape[1:], shape[0])
        put8 = stack.enter_context(npz_stream(uint8, "arr_0", pixels, np.uint8))
        writers.append(lambda samples: put8(to_uint8_images(samples)))
    return writers


def write_outputs(result: SampleResult, paths: list[Path | None], count: int) -> None:
    """The grid PNG, the .npz, the uint8 .npz and the trajectory (``paths``, None where not
    asked) of samples kept in memory, each written in full before all are renamed into place."""
    import torch

    from ddpmkit.files import staged
    from ddpmkit.outputs import save_npz, save_npz_uint8, save_picture

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


def report_outputs(
    result: SampleResult, paths: list[Path | None], folder: Path | None, count: int
) -> None:
    """Rename the complete PNG folder into place and name every file written."""
    from ddpmkit.files import finish_partial_folder
    from ddpmkit.outputs import grid_count

    out, npz, uint8, trajectory = paths
    if folder is not None:
        finish_partial_folder(folder)
    shown = grid_count(result.samples) if result.samples.ndim == 4 else len(result.samples)
    first = f" (the first {shown} of {count})" if shown < count else ""
    print(f"ddpmkit: samples {out}{first}\nddpmkit: arrays  {npz}")
    if folder is not None:
        print(f"ddpmkit: PNGs    {folder}/ ({count} files)")
    if uint8 is not None:
        print(f"ddpmkit: uint8   {uint8}")
    if trajectory is not None and result.trajectory is not None:
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
