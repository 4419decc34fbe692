"""Latent against pixel diffusion on the digits at 32×32, and text-to-image with prompts.

    python bench/latent_diffusion.py AE_FOLDER [--minutes 8] [--out DIR] [--table F.md]

AE_FOLDER is an autoencoder of the 32×32 digits (``ddpmkit train-autoencoder --data.image_size
32 …``). In one run, one after another on the same machine: the ``digits32`` preset (pixel
diffusion), ``digits32-latent`` and ``digits32-text`` (latent diffusion on AE_FOLDER's latents)
each train for ``--minutes`` (``train.minutes``: the run plans its steps from its first ones).
Reported for pixel and latent: steps done and seconds per step, the feature FID of 500 samples
(DPM-Solver++, 50 steps) to the held-out digits and the confident share, judged by the digits
classifier on the samples averaged down to 8×8 (the data's native size), and seconds per sample.
For the text model: 50 samples per prompt "a handwritten {digit}" at each guidance scale, and
the share the classifier assigns to the prompted digit.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from ddpmkit.config.parsing import from_dict, merge
from ddpmkit.config.presets import PRESETS
from ddpmkit.config.schema import RunConfig
from ddpmkit.data.loading import DIGIT_NAMES
from ddpmkit.evaluation import assess_digits
from ddpmkit.evaluation.digits_classifier import train_digits_classifier
from ddpmkit.generation.sampling import generate
from ddpmkit.storage.model import TrainedModel, load_model
from ddpmkit.training.loop import Trainer


def to_native(images: torch.Tensor) -> torch.Tensor:
    """32×32 samples averaged down to the digits' native 8×8."""
    return F.avg_pool2d(images, images.shape[-1] // 8)


def config_for(preset: str, minutes: float, autoencoder: Path | None) -> RunConfig:
    train = {"minutes": minutes, "steps": 1_000_000, "sample_every": 0}
    model = {} if autoencoder is None else {"autoencoder": str(autoencoder)}
    return from_dict(RunConfig, merge(PRESETS[preset], {"train": train, "model": model}), preset)


def train(preset: str, minutes: float, autoencoder: Path | None, out: Path) -> dict[str, float]:
    """A ``train.minutes`` run: it plans its steps from its own first steps."""
    start = time.perf_counter()
    trainer = Trainer(config_for(preset, minutes, autoencoder), out / preset)
    trainer.fit()
    assert trainer.plan is not None
    return {
        "steps": trainer.step, "seconds per step": trainer.plan.seconds_per_step,
        "train seconds": time.perf_counter() - start,
    }  # fmt: skip


def quality(model: TrainedModel, classifier: torch.nn.Module) -> dict[str, float]:
    sample = dataclasses.replace(model.config.sample, num_samples=500, batch_size=250)
    start = time.perf_counter()
    images = generate(model, sample).samples
    seconds = (time.perf_counter() - start) / 500
    report = assess_digits(to_native(images), classifier)
    return {
        "feature FID": report.fid, "FID ratio": report.fid_ratio,
        "confident": report.confident_share, "seconds per sample": seconds,
    }  # fmt: skip


def prompt_accuracy(
    model: TrainedModel, classifier: torch.nn.Module, guidance: float, per_digit: int = 50
) -> float:
    """Share of samples of "a handwritten {digit}" that the classifier assigns to that digit."""
    hits = 0
    for digit, name in enumerate(DIGIT_NAMES):
        sample = dataclasses.replace(
            model.config.sample, prompt=f"a handwritten {name}", guidance=guidance,
            num_samples=per_digit, batch_size=per_digit, seed=1000 * digit,
        )  # fmt: skip
        images = generate(model, sample).samples
        with torch.no_grad():
            predicted = classifier(to_native(images).clamp(-1, 1)).argmax(-1)
        hits += int((predicted == digit).sum())
    return hits / (10 * per_digit)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("autoencoder", type=Path)
    parser.add_argument("--minutes", type=float, default=8.0, help="training budget per model")
    parser.add_argument("--out", type=Path, default=Path("runs/latent-bench"))
    parser.add_argument("--guidance", default="1,2,4", help="classifier-free guidance scales")
    parser.add_argument("--table", type=Path, help="also write the tables here")
    args = parser.parse_args()
    classifier = train_digits_classifier(seed=0).eval()
    psnr = json.loads((args.autoencoder / "report.json").read_text())["heldout_psnr_db"]
    lines = [
        f"autoencoder {args.autoencoder}: held-out reconstruction PSNR {psnr:.2f} dB",
        "",
        "| model | steps | s/step | feature FID | FID / real | confident | s/sample |",
        "|---|---|---|---|---|---|---|",
    ]
    for preset, autoencoder in (("digits32", None), ("digits32-latent", args.autoencoder)):
        trained = train(preset, args.minutes, autoencoder, args.out)
        q = quality(load_model(args.out / preset), classifier)
        lines.append(
            f"| {preset} | {trained['steps']} | {trained['seconds per step']:.3f} | "
            f"{q['feature FID']:.2f} | {q['FID ratio']:.2f} | {q['confident']:.3f} | "
            f"{q['seconds per sample']:.4f} |"
        )
        print(lines[-1], flush=True)
    trained = train("digits32-text", args.minutes, args.autoencoder, args.out)
    model = load_model(args.out / "digits32-text")
    lines += ["", f"digits32-text: {trained['steps']} steps, {trained['seconds per step']:.3f} s/step",
              "", "| guidance | prompted digit share |", "|---|---|"]  # fmt: skip
    for scale in (float(s) for s in args.guidance.split(",")):
        lines.append(f"| {scale:g} | {prompt_accuracy(model, classifier, scale):.3f} |")
        print(lines[-1], flush=True)
    table = "\n".join(lines)
    print(table)
    if args.table:
        args.table.write_text(table + "\n")


if __name__ == "__main__":
    main()
