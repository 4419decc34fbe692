"""What people look at: PNG grids of images, PNG scatter plots of 2-D points; and .npz arrays."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from torch import Tensor, nn

from ddpmkit.config import RunConfig
from ddpmkit.data import save_image_grid, save_scatter_png
from ddpmkit.generation import ProgressCallback, generate
from ddpmkit.schedules import NoiseSchedule


def picture_upscale(height: int) -> int:
    """Nearest-neighbour magnification that shows tiny images (8×8 digits) at ≥ 64 pixels."""
    return max(1, 64 // height)


def save_picture(samples: Tensor, path: Path) -> Path:
    """A grid PNG for image batches (B, C, H, W), a scatter PNG for 2-D points (B, 2)."""
    if samples.ndim == 4:
        return save_image_grid(samples, path, upscale=picture_upscale(samples.shape[2]))
    if samples.ndim == 2 and samples.shape[1] == 2:
        return save_scatter_png(samples, path)
    raise ValueError(f"no picture for samples of shape {tuple(samples.shape)}; use the .npz")


def save_npz(samples: Tensor, path: Path) -> Path:
    """Samples as ``samples`` (float32, data scale [-1, 1]) in an .npz; refuses to overwrite."""
    if path.exists():
        raise FileExistsError(f"{path} already exists; refusing to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, samples=samples.float().numpy())
    return path


def write_samples(
    network: nn.Module,
    schedule: NoiseSchedule,
    config: RunConfig,
    shape: tuple[int, ...],
    stem: Path,
    progress: ProgressCallback | None = None,
) -> tuple[Path, Path]:
    """Draw ``config.sample`` samples and write ``stem.png`` and ``stem.npz``."""
    network.eval()
    result = generate(
        network,
        schedule,
        config.diffusion,
        config.sample,
        shape,
        bf16=config.train.bf16,
        progress=progress,
    )
    return save_picture(result.samples, stem.with_suffix(".png")), save_npz(
        result.samples, stem.with_suffix(".npz")
    )
