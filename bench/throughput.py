"""Training and sampling throughput of three U-Nets against the device's measured peak, and against
diffusers' ``UNet2DModel`` of the same configuration, interleaved in one process.

    python bench/throughput.py                       # CPU: every network, fp32 (+ bf16 where fast)
    python bench/throughput.py --device cuda         # a GPU: fp32, bf16 and fp16
    python bench/throughput.py --networks small28 --precisions fp32,bf16 --batches 16,64

Training is ``Trainer.train_step`` (loss, backward, gradient clipping, AdamW, EMA) on a synthetic
array source; denoising is ``generate`` (DPM-Solver++(2M) through the registry's sampler loop).
FLOPs come from ``torch.utils.flop_counter``; the peak is the best rate of large matmuls and 3×3
convolutions measured in the same run, in the same precision. With diffusers installed its
``UNet2DModel`` runs its usual training step (``DDPMScheduler.add_noise``, MSE, clipping, AdamW,
``EMAModel``) and its ``DPMSolverMultistepScheduler`` loop, alternated round by round with ours;
the ratio is diffusers' time over ours (> 1: ddpmkit faster).

Two ddpmkit variants run side by side: ``eager`` (``compile: false``) and ``default``, the
options as shipped (``compile: auto``), settled first as a long job would settle them: its
`CompileDecision` is told that a long run follows, so it compiles and keeps the compiled graph
only if the timed compiled units are faster (the compilation's time and the decision are printed
apart). "speed-up" is the eager time over the variant's, median over interleaved rounds.
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from ddpmkit.config.parsing import from_dict
from ddpmkit.config.presets import PRESETS
from ddpmkit.config.schema import RunConfig
from ddpmkit.core.precision import cpu_flags
from ddpmkit.generation.sampling import generate
from ddpmkit.networks import UNetConfig
from ddpmkit.networks.execution import CompileDecision, CompiledNetwork
from ddpmkit.training.loop import Trainer
from ddpmkit.training.sizing import unet_ladder

SMALL28 = UNetConfig(
    in_channels=1, sample_size=28, base_channels=32, channel_mults=(1, 2, 2),
    layers_per_block=1, attention_resolutions=(), dropout=0.0,
)  # fmt: skip
DIGITS = from_dict(RunConfig, PRESETS["digits"]).model.unet
LADDER28 = dict(unet_ladder((1, 28, 28)))  # what the quick recipe sizes for 28×28 grey images
NETWORKS: dict[str, tuple[UNetConfig, int]] = {
    "cifar10": (UNetConfig(), 32),  # Ho et al. (2020): 35.7M parameters
    "small28": (SMALL28, 28),
    "digits": (dataclasses.replace(DIGITS, in_channels=1), 8),
    "ladder28-tiny": (LADDER28["tiny"], 28),
    "ladder28-small": (LADDER28["small"], 28),
    "ladder28-medium": (LADDER28["medium"], 28),
}
SAMPLER, SAMPLE_STEPS = "dpm++2m", 10
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


# --------------------------------------------------------------------------------------------
# The device and its peak


def device_line(device: torch.device) -> str:
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return f"{props.name}, {props.total_memory / 2**30:.0f} GiB, torch {torch.__version__}"
    info = {}
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        key, _, value = line.partition(":")
        info.setdefault(key.strip(), value.strip())
    model = info.get("model name", platform.processor())
    model += f" (family {info.get('cpu family', '?')}, model {info.get('model', '?')})"
    flags = cpu_flags()
    units = [f for f in ("amx_bf16", "avx512_bf16", "avx512f", "avx2") if f in flags]
    amx = "AMX present" if "amx_bf16" in flags else "no AMX"
    return (
        f"{model}; {amx}; flags {' '.join(units) or 'none'}; "
        f"{torch.get_num_threads()} threads; torch {torch.__version__}"
    )


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds_per_call(fn: Callable[[], object], device: torch.device, calls: int) -> float:
    synchronize(device)
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    synchronize(device)
    return (time.perf_counter() - start) / calls


def peak_rates(device: torch.device, dtype: torch.dtype) -> tuple[float, float]:
    """Best measured (matmul, 3×3 convolution) GFLOP/s in ``dtype``: the practical ceiling."""
    size = 8192 if device.type == "cuda" else 2048
    a = torch.randn(size, size, device=device, dtype=dtype)
    matmul = 2 * size**3 / min(seconds_per_call(lambda: a @ a, device, 5) for _ in range(3))
    batch = 256 if device.type == "cuda" else 32
    conv_best = 0.0
    for channels, hw in ((128, 32), (256, 16), (512, 8)):
        conv = torch.nn.Conv2d(channels, channels, 3, padding=1, bias=False).to(device, dtype)
        x = torch.randn(batch, channels, hw, hw, device=device, dtype=dtype)
        for layout in (torch.contiguous_format, torch.channels_last):
            layer, inputs = conv.to(memory_format=layout), x.contiguous(memory_format=layout)
            with torch.no_grad():
                layer(inputs)
                seconds = min(seconds_per_call(lambda: layer(inputs), device, 3) for _ in range(3))  # noqa: B023
            conv_best = max(conv_best, 2 * batch * channels**2 * 9 * hw * hw / seconds)
    return matmul / 1e9, conv_best / 1e9


# --------------------------------------------------------------------------------------------
# Memory


def peak_mib(network: str, precision: str, batch: int, task: str, device: torch.device) -> float:
    """Peak memory (MiB) of one workload call with everything it holds (weights, optimizer, EMA,
    activations): CUDA's allocator peak, or on a CPU the growth of the resident set's high-water
    mark in a fresh process (``--memory-probe``), where no freed memory hides the peak."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        with tempfile.TemporaryDirectory() as tmp:
            workload = _probe_workload(network, precision, batch, device, Path(tmp))
            getattr(workload, task)()
        return (torch.cuda.max_memory_allocated(device) - base) / 2**20
    probe = [sys.executable, __file__, "--memory-probe", network, precision, str(batch), task]
    done = subprocess.run(probe, capture_output=True, text=True, check=False)
    return float(done.stdout.split()[-1]) if done.returncode == 0 else float("nan")


def _probe_workload(
    network: str, precision: str, batch: int, device: torch.device, folder: Path
) -> DdpmkitWorkload:
    data = synthetic_data(folder, network, batch)
    return DdpmkitWorkload(run_config(network, precision, batch, data, str(device), False), folder)


def memory_probe(network: str, precision: str, batch: int, task: str) -> None:
    """Print this process's high-water-mark growth (MiB) over building and calling a workload."""
    base = _status_kib("VmRSS")
    with tempfile.TemporaryDirectory() as tmp:
        getattr(_probe_workload(network, precision, batch, torch.device("cpu"), Path(tmp)), task)()
    print((_status_kib("VmHWM") - base) / 1024)


def _status_kib(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1])
    raise OSError(f"/proc/self/status has no {key}")


# --------------------------------------------------------------------------------------------
# ddpmkit: the trainer's step and the sampler loop


def run_config(
    network: str, precision: str, batch: int, data: Path, device: str, compile: object
) -> RunConfig:
    unet, _ = NETWORKS[network]
    return from_dict(
        RunConfig,
        {
            "data": {"source": "array", "path": str(data), "heldout_fraction": 0.0},
            "model": {"unet": dataclasses.asdict(unet)},
            "diffusion": {"parameterization": "v", "schedule": "cosine"},  # the quick recipe's
            "train": {
                "batch_size": batch, "precision": precision, "device": device, "compile": compile,
            },
            "sample": {
                "sampler": SAMPLER, "steps": SAMPLE_STEPS, "num_samples": batch,
                "batch_size": batch, "precision": precision, "compile": compile,
            },
        },
    )  # fmt: skip


def synthetic_data(folder: Path, network: str, count: int) -> Path:
    unet, size = NETWORKS[network]
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (count, unet.in_channels, size, size), dtype=np.uint8)
    path = folder / f"{network}-{count}.npz"
    np.savez(path, images=images)
    return path


class Workload:
    """The measured calls of one side (ddpmkit or diffusers): a training step, a sampling run."""

    train: Callable[[], object]
    sample: Callable[[], object]
    forward: Callable[[], object]  # one network evaluation at the sampling batch, for FLOPs


class DdpmkitWorkload(Workload):
    def __init__(self, config: RunConfig, folder: Path) -> None:
        self.trainer = Trainer(config, folder / f"run-{time.monotonic_ns()}")
        device, shape, batch = self.trainer.device, self.trainer.shape, config.train.batch_size
        x0 = torch.rand(batch, *shape, device=device) * 2 - 1
        labels = torch.zeros(batch, dtype=torch.long)
        self.train = lambda: self.trainer.train_step(x0, labels)
        model = self.trainer.sampling_model
        self.sample = lambda: generate(model, config.sample)
        x_t = torch.randn(batch, *shape, device=device)
        denoiser = model.denoiser
        self.forward = torch.no_grad()(lambda: denoiser(x_t, 1.0))  # as the sampler calls it
        self.decisions: dict[str, str] = {}

    def settle(self, device: torch.device) -> None:
        """Let ``compile: auto`` decide as in a long job: the training decision is fed timed
        steps, the sampling network's timed calls, each with a long run still to follow."""
        decision = self.trainer.compile_decision
        if decision is not None:
            self.decisions["train"] = _settled(decision, self.train, device)
        network = getattr(self.trainer.sampling_model.denoiser, "network", None)
        if isinstance(network, CompiledNetwork) and network.decision is not None:
            network.expect_calls(10**9)
            with torch.no_grad():
                while network.decision.state != "decided":
                    self.forward()
            network.expect_calls(0)
            self.decisions["sample"] = network.decision.reason


def _settled(decision: CompileDecision, step: Callable[[], object], device: torch.device) -> str:
    """Time ``step`` into ``decision`` until it has decided, as if 10^9 steps followed."""
    while decision.state != "decided":
        decision.record(seconds_per_call(step, device, 1), 10**9)
    return decision.reason


class DiffusersWorkload(Workload):
    """diffusers' usual loop (examples/unconditional_image_generation) on the same U-Net."""

    def __init__(self, config: RunConfig, device: torch.device) -> None:
        from diffusers import DDPMScheduler, DPMSolverMultistepScheduler, UNet2DModel
        from diffusers.training_utils import EMAModel

        from ddpmkit.networks import diffusers_config_from

        unet, size = NETWORKS_BY_CONFIG[config.model.unet]
        model = UNet2DModel(**diffusers_config_from(unet)).to(device)
        ema = EMAModel(model.parameters(), decay=config.train.ema_decay)
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.train.lr)
        noise_scheduler = DDPMScheduler(num_train_timesteps=1000)
        batch = config.train.batch_size
        x0 = torch.rand(batch, unet.in_channels, size, size, device=device) * 2 - 1
        cast = autocast_for(config.train.precision, device)

        def train() -> None:
            noise = torch.randn_like(x0)
            t = torch.randint(0, 1000, (batch,), device=device)
            with cast():
                prediction = model(noise_scheduler.add_noise(x0, noise, t), t).sample
            loss = torch.nn.functional.mse_loss(prediction.float(), noise)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad()
            ema.step(model.parameters())

        solver = DPMSolverMultistepScheduler(num_train_timesteps=1000)

        @torch.no_grad()
        def sample() -> None:
            x = torch.randn(batch, unet.in_channels, size, size, device=device)
            solver.set_timesteps(SAMPLE_STEPS)
            for t in solver.timesteps:
                with cast():
                    output = model(x, t).sample
                x = solver.step(output.float(), t, x).prev_sample

        x_t = torch.randn(batch, unet.in_channels, size, size, device=device)
        self.train, self.sample = train, sample
        self.forward = lambda: model(x_t, 500).sample


NETWORKS_BY_CONFIG = {unet: (unet, size) for unet, size in NETWORKS.values()}


def autocast_for(precision: str, device: torch.device) -> Callable[[], AbstractContextManager]:
    if precision == "fp32":
        return nullcontext
    return lambda: torch.autocast(device.type, DTYPES[precision])


def flops(fn: Callable[[], object]) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def interleaved(
    sides: dict[str, Callable[[], object]], device: torch.device, rounds: int
) -> dict[str, list[float]]:
    """Seconds per call of each side, alternating sides round by round (one warm-up each)."""
    for fn in sides.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(rounds):
        for name, fn in sides.items():
            times[name].append(seconds_per_call(fn, device, 1))
    return times


# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Row:
    network: str
    precision: str
    batch: int
    task: str  # "train" or "sample"
    variant: str  # "eager" or "default"
    per_second: float  # images/s (train) or image-steps/s (sample)
    gflops: float
    fraction: float
    memory_mib: float
    speedup: float  # eager seconds / this variant's seconds (median over rounds)
    ratio: float | None  # diffusers seconds / ddpmkit seconds (median over rounds)

    def line(self) -> str:
        unit = "img/s" if self.task == "train" else "img·steps/s"
        ratio = "—" if self.ratio is None else f"{self.ratio:.2f}"
        return (
            f"| {self.network} | {self.precision} | {self.batch} | {self.task} | {self.variant} | "
            f"{self.per_second:,.1f} {unit} | {self.gflops:,.1f} | {self.fraction:.0%} | "
            f"{self.memory_mib:,.0f} | {self.speedup:.2f} | {ratio} |"
        )


def measure(
    network: str, precision: str, batch: int, conv_peak: float, args: argparse.Namespace,
    folder: Path, data: Path,
) -> list[Row]:  # fmt: skip
    device = torch.device(args.device)
    config = run_config(network, precision, batch, data, args.device, False)
    eager = DdpmkitWorkload(config, folder)
    ours = {"eager": eager}
    if args.default:
        default = DdpmkitWorkload(run_config(network, precision, batch, data, args.device, "auto"),
                                  folder)  # fmt: skip
        started = time.perf_counter()
        default.settle(device)
        print(f"<!-- {network} {precision} batch {batch}: settling the default took "
              f"{time.perf_counter() - started:.0f} s; train: {default.decisions.get('train')}; "
              f"sample: {default.decisions.get('sample')} -->", flush=True)  # fmt: skip
        ours["default"] = default
    theirs = DiffusersWorkload(config, device) if args.diffusers else None
    if args.profile:
        for task in ("train", "sample"):
            print(f"\nprofile: {network} {precision} batch {batch} {task}")
            print(profile_table(eager, task))
    rows = []
    for task in ("train", "sample"):
        memory = peak_mib(network, precision, batch, task, device)
        work = {name: getattr(workload, task) for name, workload in ours.items()}
        if theirs is not None:
            work["diffusers"] = getattr(theirs, task)
        if task == "sample":  # the bare network, for the share of time the sampler loop adds
            work["network"] = lambda: [eager.forward() for _ in range(SAMPLE_STEPS)]
        times = interleaved(work, device, args.rounds)
        if task == "sample":
            loop = 1 - statistics.median(times.pop("network")) / statistics.median(times["eager"])
            print(f"<!-- sampler loop outside the network: {loop:.1%} of the time -->")
        if task == "train":
            work_flops, items = flops(eager.train), batch
        else:
            with torch.inference_mode():
                work_flops = flops(eager.forward) * SAMPLE_STEPS
            items = batch * SAMPLE_STEPS
        for name in ours:
            seconds = statistics.median(times[name])
            pairs = zip(times["eager"], times[name], strict=True)
            speedup = statistics.median(e / o for e, o in pairs)
            ratio = None
            if theirs is not None:
                pairs = zip(times["diffusers"], times[name], strict=True)
                ratio = statistics.median(d / o for d, o in pairs)
            gflops = work_flops / seconds / 1e9
            rows.append(
                Row(network, precision, batch, task, name, items / seconds, gflops,
                    gflops / conv_peak, memory, speedup, ratio)
            )  # fmt: skip
            print(rows[-1].line(), flush=True)
    return rows


def profile_table(workload: DdpmkitWorkload, task: str, rows: int = 12) -> str:
    """torch.profiler's operators by self time over two calls: where the time goes."""
    from torch.profiler import ProfilerActivity, profile

    call = getattr(workload, task)
    call()
    activities = [ProfilerActivity.CPU]
    if torch.cuda.is_available():
        activities.append(ProfilerActivity.CUDA)
    with profile(activities=activities) as profiler:
        call()
        call()
    key = "self_cuda_time_total" if len(activities) > 1 else "self_cpu_time_total"
    return profiler.key_averages().table(sort_by=key, row_limit=rows, max_name_column_width=50)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--networks", default=",".join(NETWORKS), help="comma-separated")
    parser.add_argument(
        "--precisions",
        default=None,
        help="comma-separated from fp32,bf16,fp16; default: fp32, bf16 where the device has "
        "bf16 units, fp16 on CUDA",
    )
    parser.add_argument("--batches", default="16,64", help="batch sizes measured for every network")
    parser.add_argument(
        "--best",
        default="",
        help="more batch sizes to try; the table marks the fastest of all as the best",
    )
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per side (median)")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="print torch.profiler tables of ddpmkit's train step and sampling at each size",
    )
    parser.add_argument(
        "--eager-only",
        dest="default",
        action="store_false",
        help="skip the default variant (compile: auto, settled as in a long job; minutes)",
    )
    parser.add_argument(
        "--no-diffusers", dest="diffusers", action="store_false", help="skip the comparison"
    )
    args = parser.parse_args()
    if args.diffusers:
        try:
            import diffusers  # noqa: F401
        except ImportError:
            print("diffusers is not installed (pip install -e .[bench]): no comparison")
            args.diffusers = False
    return args


def default_precisions(device: torch.device) -> list[str]:
    from ddpmkit.core.precision import fast_bf16

    if device.type == "cuda":
        return ["fp32", "bf16", "fp16"]
    return ["fp32", "bf16"] if fast_bf16(device) else ["fp32"]


def main() -> None:
    if sys.argv[1:2] == ["--memory-probe"]:
        network, precision, batch, task = sys.argv[2:6]
        return memory_probe(network, precision, int(batch), task)
    args = parse_args()
    device = torch.device(args.device)
    precisions = args.precisions.split(",") if args.precisions else default_precisions(device)
    batches = sorted({int(b) for b in f"{args.batches},{args.best}".split(",") if b})
    print(f"device: {device_line(device)}")
    peaks = {}
    for precision in precisions:
        peaks[precision] = peak_rates(device, DTYPES[precision])
        matmul, conv = peaks[precision]
        print(
            f"peak {precision}: matmul {matmul:,.0f} GFLOP/s, 3×3 convolution {conv:,.0f} GFLOP/s"
        )
    print(
        f"\nsampling: {SAMPLER}, {SAMPLE_STEPS} steps; ratio = diffusers time / ddpmkit time; "
        "fraction = achieved GFLOP/s over the convolution peak; MiB = peak memory of ddpmkit's "
        "eager workload"
    )
    print(
        "| network | precision | batch | task | variant | throughput | GFLOP/s | of peak | "
        "MiB | speed-up | ratio |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for network in args.networks.split(","):
            data = synthetic_data(folder, network, max(batches))
            for precision in precisions:
                for batch in batches:
                    rows += measure(
                        network, precision, batch, peaks[precision][1], args, folder, data
                    )
    print("\nbest batch size per network, precision and task:")
    for key in sorted({(r.network, r.precision, r.task, r.variant) for r in rows}):
        same = [r for r in rows if (r.network, r.precision, r.task, r.variant) == key]
        print(max(same, key=lambda r: r.per_second).line())


if __name__ == "__main__":
    main()
