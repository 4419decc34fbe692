"""``ddpmkit train-classifier``: a time-aware classifier p(y|x_t, t) on a run's data and schedule."""

from __future__ import annotations

import argparse
from pathlib import Path

from ddpmkit.cli.options import add_checkpoint, add_device_and_quiet, at_least

DESCRIPTION = (
    "Trains a noisy classifier (Dhariwal & Nichol 2021) on the labelled training data of a run, "
    "with the run's noise schedule; sample with "
    "`ddpmkit sample RUN --classifier FOLDER --classifier_scale S --label Y`."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_checkpoint(parser)
    parser.add_argument("--steps", type=at_least(1), default=2000, help="optimizer steps")
    parser.add_argument("--batch_size", type=at_least(1), default=128, help="items per step")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    parser.add_argument(
        "--base_channels", type=at_least(4), default=32, help="width of the classifier"
    )
    parser.add_argument("--seed", type=int, default=0, help="seeds weights, batches and noise")
    parser.add_argument("--out", type=Path, help="classifier folder (default: <run>/classifier)")
    add_device_and_quiet(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from ddpmkit.config.builders import build_schedule
    from ddpmkit.config.execution import pick_device
    from ddpmkit.data import load_data, stack_items
    from ddpmkit.outputs import refuse_existing
    from ddpmkit.storage.checkpoints import read_config, resolve_checkpoint
    from ddpmkit.storage.classifier_folders import build_classifier, save_classifier
    from ddpmkit.training.classifier import noisy_accuracy, train_noisy_classifier

    checkpoint = resolve_checkpoint(args.checkpoint)
    config = read_config(checkpoint)
    out = args.out or checkpoint.parent.parent / "classifier"
    refuse_existing(out)
    train, heldout = load_data(config.data, "train"), load_data(config.data, "heldout")
    if train.num_classes is None:
        raise ValueError(
            f"{args.checkpoint}: the run's data have no labels to train a classifier on"
        )
    x, labels = stack_items(train.dataset)
    torch.manual_seed(args.seed)
    network, architecture = build_classifier(train.shape, train.num_classes, args.base_channels)
    network = network.to(pick_device(args.device, "--device"))
    schedule = build_schedule(config.diffusion)
    generator = torch.Generator().manual_seed(args.seed)
    bar = tqdm(total=args.steps, desc="classifier", disable=args.quiet)

    def on_step(_step: int, loss: float) -> None:
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.3f}")

    with bar:
        train_noisy_classifier(
            network, schedule, x, labels, steps=args.steps, batch_size=args.batch_size,
            lr=args.lr, generator=generator, on_step=on_step,
        )  # fmt: skip
    x_heldout, labels_heldout = stack_items(heldout.dataset)
    for step in (0, schedule.num_steps // 4, schedule.num_steps // 2):
        accuracy = noisy_accuracy(network, schedule, x_heldout, labels_heldout, step, generator)
        print(f"ddpmkit: held-out accuracy at t = {step}: {accuracy:.3f}")
    print(f"ddpmkit: classifier {save_classifier(out, network, architecture, config.diffusion)}")
    return 0
