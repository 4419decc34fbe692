"""A folder of 28×28 grayscale digit images built from scikit-learn's bundled digits: each one
resized (bicubic) and moved by a slight random affine map, as a user's own small image set.

    python bench/digits28.py OUT [--train 8000] [--heldout 1000] [--seed 0]

writes OUT/train/<digit>/NNNNN.png and OUT/heldout/<digit>/NNNNN.png (labels from the subfolders,
for ``--data.labels_from_subfolders``); training images come from the 1,500 training digits,
held-out ones from the 297 held-out digits.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ddpmkit.data.digits import digits_arrays

SIZE = 28
ROTATION_DEGREES = 10.0
SHIFT_PIXELS = 1.5
SCALE_RANGE = (0.9, 1.1)


def jittered(
    images: torch.Tensor, count: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` draws (with replacement) of ``images`` (N, 1, 8, 8) in [-1, 1] at 28×28, each
    rotated, scaled and shifted at random; returns them and the indices drawn."""
    index = torch.randint(0, len(images), (count,), generator=generator)
    big = F.interpolate(images[index], size=(SIZE, SIZE), mode="bicubic", align_corners=False)
    angle = (torch.rand(count, generator=generator) * 2 - 1) * math.radians(ROTATION_DEGREES)
    low, high = SCALE_RANGE
    scale = low + (high - low) * torch.rand(count, generator=generator)
    shift = (torch.rand(count, 2, generator=generator) * 2 - 1) * SHIFT_PIXELS * 2 / SIZE
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1
    )
    grid = F.affine_grid(theta, list(big.shape), align_corners=False)
    moved = F.grid_sample(big + 1, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return (moved - 1).clamp(-1, 1), index


def write_split(folder: Path, split: str, count: int, seed: int) -> None:
    images, labels = digits_arrays(split)
    pictures, index = jittered(images, count, torch.Generator().manual_seed(seed))
    pixels = ((pictures[:, 0] + 1) * 127.5).round().to(torch.uint8).numpy()
    for i, (pixel, label) in enumerate(zip(pixels, labels[index].tolist(), strict=True)):
        path = folder / split / str(label) / f"{i:05d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.ascontiguousarray(pixel), mode="L").save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--train", type=int, default=8000)
    parser.add_argument("--heldout", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.out.exists() and any(args.out.iterdir()):
        raise SystemExit(f"{args.out} is not empty")
    write_split(args.out, "train", args.train, args.seed)
    write_split(args.out, "heldout", args.heldout, args.seed + 1)
    print(f"wrote {args.train} + {args.heldout} images under {args.out}")


if __name__ == "__main__":
    main()
