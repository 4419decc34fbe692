"""Pictures of a training run (matplotlib PNGs, a Pillow GIF): loss curves, samples over
training, forward-process strips and reverse trajectories.

Every picture is drawn from arrays in the data scale [-1, 1]: images (N, C, H, W), C in {1, 3,
4}, or 2-D points (N, 2). Writers refuse to overwrite and return the path they wrote.
"""

from __future__ import annotations

import csv
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from PIL import Image, ImageDraw

from ddpmkit.data.mosaic import image_grid
from ddpmkit.files import write_atomically
from ddpmkit.outputs import picture_upscale, refuse_existing

Log = Mapping[str, np.ndarray]
"""log.csv as one float array per column (NaN for an empty cell)."""

DPI = 100
POINT_COLOR = "#1f77b4"


FEW_POINTS = 30
"""Curves of fewer logged points than this are drawn with markers."""


def read_log(path: Path) -> dict[str, np.ndarray]:
    """The columns of a run's log.csv as float arrays, NaN where a cell is empty."""
    with Path(path).open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        return {}
    try:
        return {
            name: np.array([float(row.get(name) or "nan") for row in rows])
            for name in rows[0]
            if name is not None
        }
    except ValueError as error:
        raise ValueError(f"{path}: a cell is not a number ({error})") from None


def has_values(log: Log, column: str) -> bool:
    """Whether the column is in the log and holds at least one finite value."""
    return column in log and bool(np.isfinite(log[column]).any())


def read_samples(path: Path) -> np.ndarray:
    """Key ``samples`` of an .npz as float32: images (…, C, H, W) or 2-D points (…, 2)."""
    try:
        arrays = np.load(path, allow_pickle=False)
        if not isinstance(arrays, np.lib.npyio.NpzFile) or "samples" not in arrays.files:
            raise ValueError("no array 'samples'")
        with arrays:
            return np.asarray(arrays["samples"], dtype=np.float32)
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ValueError(f"{path}: not an .npz with an array 'samples' ({reason})") from None


def is_points(array: np.ndarray) -> bool:
    """2-D points (…, 2) rather than images (…, C, H, W)."""
    return array.shape[-1] == 2 and array.ndim < 4


def evenly_spaced(count: int, most: int) -> list[int]:
    """At most ``most`` indices of range(count), evenly spaced, the first and the last kept."""
    return sorted({round(i) for i in np.linspace(0, count - 1, min(count, most))})


def save_loss_plot(log: Log, path: Path, num_steps: int | None = None) -> Path:
    """The training loss and the loss of each quarter of the t range against step, log-scale y."""
    refuse_existing(path)
    figure = Figure(figsize=(7.5, 4.5), dpi=DPI, layout="constrained")
    axes = figure.add_subplot()
    colors = colormaps["viridis"](np.linspace(0.0, 0.9, 4))
    for quarter, color in enumerate(colors):
        label = _quarter_label(quarter, num_steps)
        _plot_positive(axes, log, f"loss_q{quarter}", color=color, linewidth=1, label=label)
    _plot_positive(axes, log, "loss", color="black", linewidth=2, label="loss (all t)")
    axes.set_yscale("log")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set(xlabel="step", ylabel="training loss", title="Training loss (log.csv)")
    axes.grid(which="both", alpha=0.3)
    axes.legend(fontsize=8)
    return _save_figure(figure, path)


def save_terms_plot(terms: Sequence[float], path: Path) -> Path:
    """The variational bound's terms L_t (bits/dim) against t on a log scale: L_0 the
    reconstruction, L_1 … L_{T-1} the denoising matching, L_T the prior; refuses to overwrite."""
    refuse_existing(path)
    values = np.clip(np.asarray(terms, dtype=np.float64), 1e-12, None)
    figure = Figure(figsize=(7.5, 4.5), dpi=DPI, layout="constrained")
    axes = figure.add_subplot()
    steps = np.arange(len(values))
    few = len(values) < FEW_POINTS
    axes.plot(steps, values, color=POINT_COLOR, marker="o" if few else None, markersize=4)
    axes.set_yscale("log")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set(xlabel="t", ylabel="L_t (bits/dim)",
             title=f"Terms of the variational bound, t = 0 … {len(values) - 1}")  # fmt: skip
    axes.grid(which="both", alpha=0.3)
    return _save_figure(figure, path)


def save_heldout_plot(log: Log, path: Path) -> Path:
    """Held-out bits/dim (the variational bound of train.eval_every) against step."""
    refuse_existing(path)
    figure = Figure(figsize=(7.5, 4.5), dpi=DPI, layout="constrained")
    axes = figure.add_subplot()
    known = np.isfinite(log["heldout_bpd"])
    axes.plot(log["step"][known], log["heldout_bpd"][known], marker="o", color=POINT_COLOR)
    axes.set(xlabel="step", ylabel="bits/dim", title="Held-out bits/dim (variational bound)")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.grid(alpha=0.3)
    return _save_figure(figure, path)


def save_strip(
    columns: Sequence[np.ndarray],
    titles: Sequence[str],
    path: Path,
    title: str,
    *,
    density: bool = False,
) -> Path:
    """One titled column per array: its images (N, C, H, W) stacked downwards, or its points
    (N, 2) as a scatter plot (a 2-D histogram if ``density``), all points in one view."""
    refuse_existing(path)
    if is_points(columns[0]):
        figure = _points_strip(columns, titles, density)
    else:
        figure = _images_strip(columns, titles)
    figure.suptitle(title, fontsize=11)
    return _save_figure(figure, path)


def save_animation(trajectory: np.ndarray, path: Path, num_items: int) -> Path:
    """Every step of a trajectory (B, S, C, H, W) or (B, S, 2) as one frame of a looping GIF: the
    first ``num_items`` images side by side, or all the points."""
    refuse_existing(path)
    steps = trajectory.shape[1]
    if is_points(trajectory):
        limit = _point_limit(trajectory.reshape(-1, 2))
        frames = [_point_frame(trajectory[:, s], limit) for s in range(steps)]
    else:
        frames = [_image_frame(trajectory[:num_items, s]) for s in range(steps)]
    captioned = [_captioned(frame, _frame_caption(s, steps)) for s, frame in enumerate(frames)]
    durations = [max(20, 4000 // steps)] * (steps - 1) + [1500]  # ~4 s, then hold x_0
    return write_atomically(
        path,
        lambda where: captioned[0].save(
            where, save_all=True, append_images=captioned[1:], duration=durations, loop=0
        ),
        overwrite=True,
    )


def trajectory_title(step: int, steps: int) -> str:
    """x_T for the first recorded state, x_0 for the last, else the step's index."""
    return "x_T" if step == 0 else "x_0" if step == steps - 1 else f"step {step}"


def _frame_caption(step: int, steps: int) -> str:
    """The GIF frame's caption: which state of the trajectory it shows."""
    ends = {0: "x_T, ", steps - 1: "x_0, "}
    return f"{ends.get(step, '')}step {step} of {steps - 1}"


def _quarter_label(quarter: int, num_steps: int | None) -> str:
    """The t range of a quarter of log.csv (t·4 // T = quarter)."""
    if num_steps is None:
        return f"loss_q{quarter}"
    low, high = -(-quarter * num_steps // 4), -(-(quarter + 1) * num_steps // 4)
    return f"loss_q{quarter}: {low} ≤ t < {high}"


def _plot_positive(axes: Axes, log: Log, column: str, **style: Any) -> None:
    """The column's positive values against step (empty cells and zeros have no loss to show)."""
    if column not in log:
        return
    values = log[column]
    shown = np.isfinite(values) & (values > 0)
    if shown.sum() < FEW_POINTS:  # a short run: the points, not only a line between them
        style = {"marker": "o", "markersize": 4, **style}
    axes.plot(log["step"][shown], values[shown], **style)


def _row_of_axes(figure: Figure, count: int) -> list[Axes]:
    """``count`` axes side by side (a list even for one)."""
    return list(figure.subplots(1, count, squeeze=False)[0])


def _points_strip(columns: Sequence[np.ndarray], titles: Sequence[str], density: bool) -> Figure:
    """One square scatter plot (or 2-D histogram) per column, all in the same view."""
    figure = Figure(figsize=(max(3.0, 1.9 * len(columns)), 2.5), dpi=DPI, layout="constrained")
    limit = _point_limit(np.concatenate(columns))
    panels = _row_of_axes(figure, len(columns))
    for axes, points, label in zip(panels, columns, titles, strict=True):
        _draw_points(axes, points, limit, density)
        axes.set_title(label, fontsize=9)
    return figure


def _images_strip(columns: Sequence[np.ndarray], titles: Sequence[str]) -> Figure:
    """Each column's images stacked downwards, one inch wide, at their own pixels."""
    mosaics = [_column_mosaic(images) for images in columns]
    rows, cols = mosaics[0].shape[:2]
    size = (max(3.0, 1.0 * len(columns) + 0.2), 1.0 * rows / cols + 0.6)  # + the titles
    figure = Figure(figsize=size, dpi=DPI, layout="constrained")
    panels = _row_of_axes(figure, len(columns))
    for axes, mosaic, label in zip(panels, mosaics, titles, strict=True):
        axes.imshow(mosaic, interpolation="nearest", cmap="gray", vmin=0, vmax=255)
        axes.set_title(label, fontsize=9)
        axes.set_axis_off()
    return figure


def _save_figure(figure: Figure, path: Path) -> Path:
    """Render the figure to ``path`` (matplotlib's Agg renderer, chosen by the suffix)."""
    return write_atomically(path, figure.savefig, overwrite=True)


def _to_pixels(images: np.ndarray) -> np.ndarray:
    """[-1, 1] images (N, C, H, W) as uint8 (N, H, W, C), clipped; NaN is black."""
    scaled = (np.nan_to_num(images, nan=-1.0) + 1.0) * 127.5
    pixels: np.ndarray = scaled.round().clip(0, 255).astype(np.uint8).transpose(0, 2, 3, 1)
    return pixels


def _column_mosaic(images: np.ndarray) -> np.ndarray:
    """Images (N, C, H, W) stacked downwards with white gaps: (rows, W, C), or (rows, W) if gray."""
    grid = image_grid(_to_pixels(images), nrow=1, upscale=1, padding=1, pad_value=255)
    return grid[..., 0] if grid.shape[-1] == 1 else grid


def _point_limit(points: np.ndarray) -> float:
    """Half-width of a square view around 0 holding nearly all finite points (outliers cut)."""
    finite = np.abs(points[np.isfinite(points).all(axis=1)])
    if finite.size == 0:
        return 1.1
    return 1.05 * max(1.1, float(np.percentile(finite, 99.5)))


def _draw_points(axes: Axes, points: np.ndarray, limit: float, density: bool) -> None:
    """The finite points in the square view [-limit, limit]², as dots or as a 2-D histogram."""
    finite = points[np.isfinite(points).all(axis=1)]
    view = (-limit, limit)
    if density:
        axes.hist2d(finite[:, 0], finite[:, 1], bins=48, range=(view, view), cmap="Blues")
    else:
        axes.scatter(finite[:, 0], finite[:, 1], s=3, alpha=0.7, linewidths=0, c=POINT_COLOR)
    axes.set(xlim=view, ylim=view, aspect="equal")
    axes.tick_params(labelsize=6)


def _image_frame(images: np.ndarray) -> Image.Image:
    """Images (N, C, H, W) side by side, enlarged to be seen, as an RGB picture."""
    pixels = _to_pixels(images)
    upscale = picture_upscale(pixels.shape[1])
    grid = image_grid(pixels, nrow=len(pixels), upscale=upscale, padding=2, pad_value=255)
    return Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid).convert("RGB")


def _point_frame(points: np.ndarray, limit: float, size: int = 256) -> Image.Image:
    """Points (N, 2) as 3×3-pixel dots on a white square spanning [-limit, limit]²."""
    canvas = np.full((size, size, 3), 255, dtype=np.uint8)
    canvas[size // 2, :] = canvas[:, size // 2] = 225  # the axes x = 0 and y = 0
    finite = points[np.isfinite(points).all(axis=1)]
    cols = ((finite[:, 0] + limit) / (2 * limit) * (size - 1)).round().astype(int)
    rows = ((limit - finite[:, 1]) / (2 * limit) * (size - 1)).round().astype(int)
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            r, c = rows + dr, cols + dc
            inside = (r >= 0) & (r < size) & (c >= 0) & (c < size)
            canvas[r[inside], c[inside]] = (31, 119, 180)
    return Image.fromarray(canvas)


def _captioned(frame: Image.Image, caption: str) -> Image.Image:
    """The frame below a white band with the caption (which also keeps every frame distinct)."""
    band = 18
    width = max(frame.width, 6 * len(caption) + 8)
    picture = Image.new("RGB", (width, frame.height + band), "white")
    picture.paste(frame, ((width - frame.width) // 2, band))
    ImageDraw.Draw(picture).text((4, 3), caption, fill="black")
    return picture
