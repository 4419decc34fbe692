"""Quality per CPU-minute: ddpmkit's time-budget recipe against diffusers' and lucidrains'
training loops at their usual settings, each given the same wall time on the same images.

    python bench/digits28.py /tmp/d28          # 8,000 + 1,000 jittered 28×28 digits
    python bench/quality_per_minute.py /tmp/d28 [--minutes 4] [--arms ddpmkit,diffusers,lucidrains]
    python bench/quality_per_minute.py digits --minutes 1 --arms ddpmkit   # the bundled 8×8

For each arm: the steps it reached, then 500 samples judged by a digits classifier (the demo's
calibrated CNN) trained on the bench's own training images, all area-averaged to 8×8: the
feature FID to the held-out images, the share classified with confidence ≥ 0.9, the smallest
and largest class share, and the seconds to draw the 500 (each arm with its own default sampler:
ddpmkit's quick recipe draws by 100 autoguided ancestral steps, the peers by DDIM, 50 steps).
The row "real" judges 500 training images the same way: the FID target is 2× its FID.
Peers need ``pip install diffusers denoising-diffusion-pytorch``.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from ddpmkit.config.parsing import from_dict, merge
from ddpmkit.config.presets import QUICK_START
from ddpmkit.config.schema import RunConfig
from ddpmkit.data import load_data, stack_items
from ddpmkit.evaluation.digits_classifier import train_digits_classifier
from ddpmkit.evaluation.fid import frechet_distance
from ddpmkit.generation.sampling import generate
from ddpmkit.storage.model import load_model
from ddpmkit.training.loop import Trainer

SAMPLES = 500


def folder_and_size(source: str) -> tuple[Path, int]:
    """A digits28 folder and the side its images are read at: ``/tmp/d28`` is 28, ``/tmp/d28@16``
    resizes them to 16×16."""
    folder, _, size = source.partition("@")
    return Path(folder), int(size or 28)


def data_options(source: str) -> dict:
    """The DataConfig values of the bench's images: a digits28 folder or the bundled digits."""
    if source == "digits":
        return {"source": "digits"}
    folder, size = folder_and_size(source)
    return {
        "source": "folder", "path": str(folder / "train"), "image_size": size,
        "channels": 1, "labels_from_subfolders": True, "heldout_fraction": 0.0,
    }  # fmt: skip


def heldout_split(source: str) -> tuple[torch.Tensor, torch.Tensor]:
    if source == "digits":
        config = from_dict(RunConfig, {"data": data_options(source)}).data
        return stack_items(load_data(config, "heldout").dataset)
    options = data_options(source) | {"path": str(folder_and_size(source)[0] / "heldout")}
    config = from_dict(RunConfig, {"data": options}).data
    return stack_items(load_data(config, "train").dataset)


def training_split(source: str) -> tuple[torch.Tensor, torch.Tensor]:
    config = from_dict(RunConfig, {"data": data_options(source)}).data
    return stack_items(load_data(config, "train").dataset)


def training_images(source: str) -> torch.Tensor:
    return training_split(source)[0]


def native(images: torch.Tensor) -> torch.Tensor:
    """Images averaged down to the digits' native 8×8, clamped to [-1, 1]."""
    return F.interpolate(images.float().clamp(-1, 1), size=(8, 8), mode="area")


class Judge:
    """A digits classifier trained on the bench's own training images (at 8×8), and the held-out
    images' features: what samples are compared with."""

    def __init__(self, source: str) -> None:
        images, labels = training_split(source)
        self.classifier = train_digits_classifier(0, native(images), labels).eval()
        self.reference = self.features(native(heldout_split(source)[0]))

    @torch.no_grad()
    def features(self, images: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.classifier.features(part) for part in images.split(500)])

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> dict[str, float]:
        """FID to the held-out images' features, confident share, smallest/largest class share."""
        images = native(images)
        features = self.features(images)
        probabilities = self.classifier.head(features).softmax(-1)
        shares = torch.bincount(probabilities.argmax(-1), minlength=10).double() / len(images)
        fid = frechet_distance(features.double().numpy(), self.reference.double().numpy())
        return {
            "fid": fid, "confident": float((probabilities.amax(-1) >= 0.9).double().mean()),
            "smallest class": float(shares.min()), "largest class": float(shares.max()),
        }  # fmt: skip


def fixed_unet(patch: int, base: int, mults: list[int], size: int = 28) -> dict:
    """A recipe with a named one-resnet U-Net for grey images of ``size`` at batch 32 (a named
    model has no automatic batch)."""
    unet = {
        "in_channels": 1, "sample_size": size, "patch_size": patch, "base_channels": base,
        "channel_mults": mults, "layers_per_block": 1, "attention_resolutions": [],
        "dropout": 0.0, "norm_groups": 16,
    }  # fmt: skip
    return {"model": {"auto_size": False, "unet": unet}, "train": {"batch_size": 32}}


RECIPES: dict[str, dict] = {
    # what a recipe changes on top of QUICK_START (what `ddpmkit train` does when no model is
    # named); recipes combine with "+": ``ddpmkit:b32+lognormal``
    "default": {},
    "eps": {"diffusion": {"parameterization": "eps"}},
    "minsnr": {"diffusion": {"loss_weighting": "min_snr"}},
    "lognormal": {"diffusion": {"timestep_sampling": "lognormal"}},
    "cosine": {"train": {"lr_decay": "cosine"}},
    "linear": {"diffusion": {"schedule": "linear"}},
    "cosine_noise": {"diffusion": {"schedule": "cosine"}},
    "constant": {"train": {"lr_decay": "constant"}},
    "b16": {"train": {"batch_size": 16}},
    "b32": {"train": {"batch_size": 32}},
    "b64": {"train": {"batch_size": 64}},
    "b128": {"train": {"batch_size": 128}},
    "lr1e-3": {"train": {"lr": 1e-3}},
    "lr2e-3": {"train": {"lr": 2e-3}},
    "lr4e-3": {"train": {"lr": 4e-3}},
    "c124": fixed_unet(1, 16, [1, 2, 4]),  # the tiny rung with 64 channels at the coarsest level
    "p2s": fixed_unet(2, 32, [1, 2]),  # 2×2 patches: 32 and 64 channels at 14×14 and 7×7
    "p2t": fixed_unet(2, 16, [1, 2]),  # 2×2 patches: 16 and 32 channels at 14×14 and 7×7
    "p4": fixed_unet(4, 64, [1]),  # 4×4 patches: one level of 64 channels at 7×7
    "unet8t": fixed_unet(1, 16, [1, 2], size=8),  # the tiny rung at 8×8
    "unet8s": fixed_unet(1, 32, [1, 2], size=8),  # the small rung at 8×8
    "unet16t": fixed_unet(2, 16, [1, 2], size=16),  # the tiny rung at 16×16 (2×2 patches)
    "mlp512": {  # the mlp-medium rung at batch 128, at any size
        "model": {"auto_size": False, "kind": "mlp", "mlp": {"hidden": 512, "num_blocks": 2}},
        "train": {"batch_size": 128},
    },
    "lnhigh": {  # log-normal noise levels centred at σ = 1 (the default centre is σ = 0.3)
        "diffusion": {"timestep_sampling": "lognormal", "lognormal_mean": 0.0, "lognormal_std": 1.5}
    },
}
"""ddpmkit arms: ``--arms ddpmkit:eps+b64,…`` (``ddpmkit`` alone is ``ddpmkit:default``)."""


def ddpmkit_arm(
    source: str, minutes: float, out: Path, recipe: str = "default"
) -> tuple[int, Callable[[int], torch.Tensor]]:
    """ddpmkit as a new user runs it (no model named: QUICK_START, automatic sizing) with
    train.minutes, plus the recipe's changes."""
    run = {"data": data_options(source), "train": {"minutes": minutes, "steps": 1_000_000}}
    values = merge(QUICK_START, run)
    for part in recipe.split("+"):
        values = merge(values, RECIPES[part])
    folder = out / f"ddpmkit-{recipe}"
    trainer = Trainer(from_dict(RunConfig, values), folder)
    trainer.fit()

    def sample(count: int) -> torch.Tensor:
        model = load_model(folder)
        config = dataclasses.replace(model.config.sample, num_samples=count, batch_size=250)
        return generate(model, config).samples

    return trainer.step, sample


def timed_loop(minutes: float, step: Callable[[], None]) -> int:
    """Call ``step`` until ``minutes`` of wall time have passed; the number of steps."""
    deadline, steps = time.perf_counter() + 60 * minutes, 0
    while time.perf_counter() < deadline:
        step()
        steps += 1
    return steps


def batches(images: torch.Tensor, size: int, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    while True:
        yield images[torch.randint(0, len(images), (size,), generator=generator)]


def diffusers_arm(
    source: str, minutes: float, _out: Path
) -> tuple[int, Callable[[int], torch.Tensor]]:
    """diffusers' unconditional training example at its defaults (UNet2DModel with attention,
    DDPMScheduler, AdamW 1e-4, cosine schedule with 500 warm-up steps, batch 16, EMA), the
    network's levels cut to what 28×28 allows; sampled with DDIM, 50 steps."""
    from diffusers import DDIMScheduler, DDPMScheduler, UNet2DModel
    from diffusers.optimization import get_cosine_schedule_with_warmup
    from diffusers.training_utils import EMAModel

    images = training_images(source)
    size = images.shape[-1]
    torch.manual_seed(0)
    net = UNet2DModel(
        sample_size=size, in_channels=1, out_channels=1, layers_per_block=2,
        block_out_channels=(128, 256, 256),
        down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
    )  # fmt: skip
    scheduler = DDPMScheduler(num_train_timesteps=1000)
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-4, weight_decay=1e-6)
    lr = get_cosine_schedule_with_warmup(optimizer, 500, 10_000)
    ema = EMAModel(net.parameters(), decay=0.9999, use_ema_warmup=True, power=0.75)
    stream = batches(images, 16)

    def step() -> None:
        x0 = next(stream)
        noise = torch.randn_like(x0)
        t = torch.randint(0, 1000, (len(x0),))
        loss = F.mse_loss(net(scheduler.add_noise(x0, noise, t), t).sample, noise)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        optimizer.step()
        lr.step()
        ema.step(net.parameters())

    steps = timed_loop(minutes, step)
    ema.copy_to(net.parameters())

    @torch.no_grad()
    def sample(count: int) -> torch.Tensor:
        ddim = DDIMScheduler.from_config(scheduler.config)
        ddim.set_timesteps(50)
        x = torch.randn(count, 1, size, size, generator=torch.Generator().manual_seed(0))
        parts = []
        for part in x.split(100):
            for t in ddim.timesteps:
                part = ddim.step(net(part, t).sample, t, part).prev_sample
            parts.append(part)
        return torch.cat(parts)

    return steps, sample


def lucidrains_arm(
    source: str, minutes: float, _out: Path
) -> tuple[int, Callable[[int], torch.Tensor]]:
    """lucidrains' denoising-diffusion-pytorch as its README trains it (Unet dim 64, v-prediction
    on the sigmoid schedule, Adam 8e-5, batch 32, EMA 0.995 every 10 steps), dim_mults cut to
    (1, 2, 4) for 28×28; sampled with its DDIM, 50 steps."""
    from denoising_diffusion_pytorch import GaussianDiffusion, Unet
    from ema_pytorch import EMA

    images = (training_images(source) + 1) / 2  # it normalises [0, 1] itself
    size = images.shape[-1]
    torch.manual_seed(0)
    unet = Unet(dim=64, dim_mults=(1, 2, 4), channels=1)
    diffusion = GaussianDiffusion(unet, image_size=size, timesteps=1000, sampling_timesteps=50)
    optimizer = torch.optim.Adam(diffusion.parameters(), lr=8e-5, betas=(0.9, 0.99))
    ema = EMA(diffusion, beta=0.995, update_every=10)
    stream = batches(images, 32)

    def step() -> None:
        loss = diffusion(next(stream))
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(diffusion.parameters(), 1.0)
        optimizer.step()
        ema.update()

    steps = timed_loop(minutes, step)

    @torch.no_grad()
    def sample(count: int) -> torch.Tensor:
        torch.manual_seed(0)
        parts = [ema.ema_model.sample(batch_size=100) for _ in range(math.ceil(count / 100))]
        return torch.cat(parts)[:count] * 2 - 1

    return steps, sample


ARMS = {"ddpmkit": ddpmkit_arm, "diffusers": diffusers_arm, "lucidrains": lucidrains_arm}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "data",
        help="a digits28 folder (bench/digits28.py), FOLDER@SIZE to resize its images, or 'digits'",
    )
    parser.add_argument("--minutes", type=float, default=4.0)
    parser.add_argument("--arms", default="ddpmkit,diffusers,lucidrains")
    parser.add_argument("--out", type=Path, default=Path("runs/quality-per-minute"))
    parser.add_argument("--table", type=Path, help="also write the table here")
    parser.add_argument(
        "--peer_samples", type=int, default=SAMPLES,
        help="samples drawn from the peers' (slow) networks; their FID is compared with real "
        "images' at the same count and their time scaled to 500",
    )  # fmt: skip
    args = parser.parse_args()
    judge = Judge(args.data)
    train_images = training_images(args.data)
    pick = torch.randperm(len(train_images), generator=torch.Generator().manual_seed(0))
    counts = sorted({SAMPLES, args.peer_samples}, reverse=True)
    real = {n: judge(train_images[pick[:n]]) for n in counts}  # real against real, n each
    held = judge(heldout_split(args.data)[0])
    lines = [
        f"data {args.data}, {args.minutes:g} min of training per arm",
        "",
        "| arm | steps | feature FID | FID / real | confident ≥ 0.9 | class shares | s for 500 |",
        "|---|---|---|---|---|---|---|",
        *(
            f"| real (training images, {n}) | – | {q['fid']:.2f} | 1.00 | {q['confident']:.3f} "
            f"| {q['smallest class']:.3f}–{q['largest class']:.3f} | – |"
            for n, q in real.items()
        ),
        f"| real held-out (confidence reference) | – | – | – | {held['confident']:.3f} | "
        f"{held['smallest class']:.3f}–{held['largest class']:.3f} | – |",
    ]
    print("\n".join(lines), flush=True)
    for name in args.arms.split(","):
        arm, _, recipe = name.partition(":")
        options = {"recipe": recipe} if recipe else {}
        count = SAMPLES if arm == "ddpmkit" else args.peer_samples
        steps, sample = ARMS[arm](args.data, args.minutes, args.out, **options)
        start = time.perf_counter()
        images = sample(count)
        seconds = (time.perf_counter() - start) * SAMPLES / count
        q = judge(images)
        label = (
            name if count == SAMPLES else f"{name} ({count} samples; time × {SAMPLES / count:g})"
        )
        lines.append(
            f"| {label} | {steps} | {q['fid']:.2f} | {q['fid'] / real[count]['fid']:.2f} | "
            f"{q['confident']:.3f} | {q['smallest class']:.3f}–{q['largest class']:.3f} | "
            f"{seconds:.0f} |"
        )
        print(lines[-1], flush=True)
    if args.table:
        args.table.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
