"""Writing samples to PNG with Pillow: image grids and 2-D scatter plots (no matplotlib)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

from ddpmkit.files import write_atomically

_MODES = {1: "L", 3: "RGB", 4: "RGBA"}


def to_uint8_images(x: Tensor) -> np.ndarray:
    """[-1, 1] images (B, C, H, W) -> uint8 array (B, H, W, C), rounded, clipped to 0..255."""
    if x.ndim != 4:
        raise ValueError(f"expected images (B, C, H, W), got shape {tuple(x.shape)}")
    pixels = ((x.detach().to(torch.float32) + 1.0) * 127.5).round().clamp(0, 255)
    return pixels.to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def _write_png(img: Image.Image, path: str | Path, overwrite: bool) -> Path:
    """Save img as PNG at path, atomically (`ddpmkit.files`); FileExistsError naming path unless
    overwrite."""
    return write_atomically(
        Path(path), lambda where: img.save(where, format="PNG"), overwrite=overwrite
    )


def image_grid(
    pixels: np.ndarray, nrow: int, upscale: int, padding: int, pad_value: int
) -> np.ndarray:
    """Tile uint8 images (B, H, W, C) into one (rows·(H·upscale+padding)+padding, ..., C) array."""
    count, height, width, channels = pixels.shape
    tiles = pixels.repeat(upscale, axis=1).repeat(upscale, axis=2)  # nearest-neighbour upscale
    tile_h, tile_w = height * upscale, width * upscale
    rows = math.ceil(count / nrow)
    grid = np.full(
        (padding + rows * (tile_h + padding), padding + nrow * (tile_w + padding), channels),
        pad_value,
        dtype=np.uint8,
    )
    for i in range(count):
        top = padding + (i // nrow) * (tile_h + padding)
        left = padding + (i % nrow) * (tile_w + padding)
        grid[top : top + tile_h, left : left + tile_w] = tiles[i]
    return grid


def save_image_grid(
    x: Tensor,
    path: str | Path,
    nrow: int | None = None,
    upscale: int = 1,
    *,
    padding: int = 1,
    pad_value: int = 255,
    overwrite: bool = False,
    titles: Sequence[str] | None = None,
) -> Path:
    """Write [-1, 1] images (B, C, H, W), C in {1, 3, 4}, as one PNG grid of nrow per row.

    nrow defaults to ceil(sqrt(B)); upscale enlarges each pixel (nearest) for tiny images; padding
    pixels of pad_value separate the tiles. 1 channel -> grayscale, 4 -> RGBA. ``titles`` (one
    per column) are written in a band above the grid.
    """
    if x.ndim != 4 or x.shape[0] == 0 or x.shape[1] not in _MODES:
        raise ValueError(f"expected images (B>0, C in 1/3/4, H, W), got shape {tuple(x.shape)}")
    nrow = nrow if nrow is not None else math.ceil(math.sqrt(x.shape[0]))
    if nrow < 1 or upscale < 1 or padding < 0 or not 0 <= pad_value <= 255:
        raise ValueError(
            f"bad grid options nrow={nrow} upscale={upscale} padding={padding} "
            f"pad_value={pad_value}"
        )
    grid = image_grid(to_uint8_images(x), nrow, upscale, padding, pad_value)
    channels = grid.shape[-1]
    img = Image.fromarray(grid[..., 0] if channels == 1 else grid)  # L, RGB or RGBA by shape
    if titles is not None:
        img = _with_titles(img, titles, x.shape[3] * upscale, padding)
    return _write_png(img, path, overwrite)


def _with_titles(img: Image.Image, titles: Sequence[str], tile: int, padding: int) -> Image.Image:
    """img below a white band with titles[j] centred over column j (tiles ``tile`` px wide)."""
    font = ImageFont.load_default()
    band = 16
    titled = Image.new("RGB", (img.width, img.height + band), "white")
    titled.paste(img.convert("RGB"), (0, band))
    draw = ImageDraw.Draw(titled)
    for column, title in enumerate(titles):
        centre = padding + column * (tile + padding) + tile / 2
        width = draw.textlength(title, font=font)
        draw.text((centre - width / 2, 2), title, fill="black", font=font)
    return titled


def _extent(points: np.ndarray) -> tuple[float, float, float, float]:
    """A square (xmin, xmax, ymin, ymax) around the finite points, with a 5% margin."""
    finite = points[np.isfinite(points).all(axis=1)]
    if len(finite) == 0:
        return (-1.0, 1.0, -1.0, 1.0)
    center = (finite.min(axis=0) + finite.max(axis=0)) / 2.0
    half = max(float((finite.max(axis=0) - finite.min(axis=0)).max()) / 2.0 * 1.05, 1e-6)
    return (center[0] - half, center[0] + half, center[1] - half, center[1] + half)


def _pixel_coords(
    points: np.ndarray, extent: tuple[float, float, float, float], size: int
) -> np.ndarray:
    """(N, 2) points -> (N, 2) pixel (column, row); image rows grow downwards."""
    x_min, x_max, y_min, y_max = extent
    cols = (points[:, 0] - x_min) / (x_max - x_min) * (size - 1)
    rows = (y_max - points[:, 1]) / (y_max - y_min) * (size - 1)
    return np.stack([cols, rows], axis=1)


def save_scatter_png(
    points: Tensor | np.ndarray,
    path: str | Path,
    *,
    size: int = 512,
    extent: tuple[float, float, float, float] | None = None,
    radius: int = 1,
    color: tuple[int, int, int] = (31, 119, 180),
    overwrite: bool = False,
) -> Path:
    """Draw 2-D points (N, 2) as a size×size PNG scatter plot; non-finite points are skipped.

    extent = (xmin, xmax, ymin, ymax) fixes the view (compare plots across runs); None fits the
    data. Light gray lines mark the axes x = 0 and y = 0 when they are in view.
    """
    array = points.detach().cpu().numpy() if isinstance(points, Tensor) else np.asarray(points)
    if array.ndim != 2 or array.shape[1] != 2:
        raise ValueError(f"expected points (N, 2), got shape {array.shape}")
    array = array.astype(np.float64)
    view = extent if extent is not None else _extent(array)
    if not (view[1] > view[0] and view[3] > view[2]) or size < 2 or radius < 0:
        raise ValueError(f"bad scatter options extent={extent} size={size} radius={radius}")
    img = Image.new("RGB", (size, size), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    ((origin_col, origin_row),) = _pixel_coords(np.zeros((1, 2)), view, size).tolist()
    if 0 <= origin_col < size:
        draw.line([(origin_col, 0), (origin_col, size - 1)], fill=(220, 220, 220))
    if 0 <= origin_row < size:
        draw.line([(0, origin_row), (size - 1, origin_row)], fill=(220, 220, 220))
    finite = array[np.isfinite(array).all(axis=1)]
    for c, r in _pixel_coords(finite, view, size).tolist():
        if radius == 0:
            draw.point((c, r), fill=color)
        else:
            draw.ellipse([c - radius, r - radius, c + radius, r + radius], fill=color)
    return _write_png(img, path, overwrite)
