"""What people look at: PNG grids of images, PNG scatter plots of 2-D points; and .npz arrays."""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any, Literal, overload

import numpy as np
from PIL import Image
from torch import Tensor

from ddpmkit.data import save_image_grid, save_scatter_png, to_uint8_images
from ddpmkit.files import write_atomically


def picture_upscale(height: int) -> int:
    """Nearest-neighbour magnification that shows tiny images (8×8 digits) at ≥ 64 pixels."""
    return max(1, 64 // height)


def refuse_existing(*paths: Path | None) -> None:
    """Nothing already written is overwritten: an existing output is an error naming it."""
    for path in paths:
        if path is not None and Path(path).exists():
            raise FileExistsError(f"{path} already exists; refusing to overwrite it (choose --out)")


def check_outputs(outputs: Mapping[str, tuple[Path | None, str]]) -> None:
    """Before any work: every output (keyed by its flag, with the suffix its writer produces) is
    new, has that suffix, differs from the others, and its folder can be made and written to."""
    seen: dict[Path, str] = {}
    for flag, (path, suffix) in outputs.items():
        if path is None:
            continue
        path = Path(path)
        if path.suffix.lower() != suffix:
            raise ValueError(
                f"{flag} {path}: this output is written as {suffix}; name it *{suffix}"
            )
        resolved = path.resolve()
        if resolved in seen:
            raise ValueError(
                f"{flag} and {seen[resolved]} both name {path}; give them different files"
            )
        seen[resolved] = flag
        refuse_existing(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ValueError(f"{flag} {path}: cannot make its folder ({error.strerror})") from None
        if not os.access(path.parent, os.W_OK):
            raise ValueError(f"{flag} {path}: its folder {path.parent} is not writable")


GRID_IMAGES = 1024
"""The most images a grid PNG shows; all samples are in the arrays written beside it."""
GRID_POINTS = 100_000
"""The most 2-D points a scatter PNG shows."""
GRID_PIXELS = 16_000_000
"""The most pixels of a grid PNG (viewers and Pillow refuse pictures of hundreds of megapixels)."""


def grid_count(samples: Tensor) -> int:
    """How many of the images (B, C, H, W) a grid PNG shows: all, up to `GRID_IMAGES` and
    `GRID_PIXELS` at the grid's magnification."""
    height, width = samples.shape[2], samples.shape[3]
    tile = (height * picture_upscale(height) + 1) * (width * picture_upscale(height) + 1)
    return max(1, min(len(samples), GRID_IMAGES, GRID_PIXELS // tile))


def save_picture(samples: Tensor, path: Path) -> Path:
    """A grid PNG for image batches (B, C, H, W) — the first `grid_count` of them — and a
    scatter PNG for 2-D points (B, 2)."""
    if samples.ndim == 4:
        shown = samples[: grid_count(samples)]
        return save_image_grid(shown, path, upscale=picture_upscale(samples.shape[2]))
    if samples.ndim == 2 and samples.shape[1] == 2:
        return save_scatter_png(samples, path)
    raise ValueError(f"no picture for samples of shape {tuple(samples.shape)}; use the .npz")


def save_npz(samples: Tensor, path: Path) -> Path:
    """Samples as ``samples`` (float32, data scale [-1, 1]) in an .npz, written atomically;
    refuses to overwrite."""
    array = samples.float().numpy()
    return write_atomically(path, lambda where: np.savez_compressed(where, samples=array))


def save_png_folder(samples: Tensor, folder: Path, first_index: int = 0) -> Path:
    """One PNG per image (B, C, H, W), at its own size, named by its index in the whole set
    (``000000.png`` …), as clean-fid and pytorch-fid read them; each written atomically, into a
    folder that `ddpmkit.files.partial_folder` renames once complete; refuses to overwrite."""
    pixels = to_uint8_images(samples)
    folder.mkdir(parents=True, exist_ok=True)
    for offset, image in enumerate(pixels):
        picture = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
        path = folder / f"{first_index + offset:06d}.png"
        write_atomically(path, partial(picture.save, format="PNG"))
    return folder


@contextmanager
def npz_stream(
    path: Path, key: str, shape: tuple[int, ...], dtype: np.dtype[Any] | type
) -> Iterator[Callable[[np.ndarray], None]]:
    """An .npz holding one array ``key`` of ``shape``, written (deflated, as
    ``np.savez_compressed`` writes) from the chunks of its first axis given to the yielded
    function, in order: memory stays one chunk whatever the array's size. An error if the chunks
    do not add up to ``shape``.

    Args:
        path: the file (written as it is; stage it with `ddpmkit.files.staged`).
        key: the array's name in the archive.
        shape: the whole array's shape.
        dtype: its dtype.
    """
    kind = np.dtype(dtype)
    rows = 0
    header = {"descr": np.lib.format.dtype_to_descr(kind), "fortran_order": False,
              "shape": tuple(shape)}  # fmt: skip
    with (
        zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive,
        archive.open(f"{key}.npy", "w", force_zip64=True) as member,
    ):
        np.lib.format.write_array_header_2_0(member, header)

        def put(chunk: np.ndarray) -> None:
            nonlocal rows
            if tuple(chunk.shape[1:]) != tuple(shape[1:]):
                raise ValueError(f"a chunk of shape {chunk.shape} in an array of {shape}")
            member.write(np.ascontiguousarray(chunk, dtype=kind).tobytes())
            rows += len(chunk)

        yield put
    if rows != shape[0]:
        raise ValueError(f"{path}: {rows} rows were written of the {shape[0]} announced")


def save_npz_uint8(samples: Tensor, path: Path) -> Path:
    """Images as ``arr_0``, uint8 (B, H, W, C): the format of OpenAI's guided-diffusion
    evaluator, written atomically; refuses to overwrite."""
    pixels = to_uint8_images(samples)
    return write_atomically(path, lambda where: np.savez(where, arr_0=pixels))


Output = Literal["tensor", "numpy", "pil"]
"""The forms samples are returned in by `to_images` and ``Model.sample``."""
OUTPUTS: tuple[Output, ...] = ("tensor", "numpy", "pil")


@overload
def to_images(samples: Tensor, output: Literal["tensor"]) -> Tensor: ...
@overload
def to_images(samples: Tensor, output: Literal["numpy"]) -> np.ndarray: ...
@overload
def to_images(samples: Tensor, output: Literal["pil"]) -> list[Image.Image]: ...
@overload
def to_images(
    samples: Tensor, output: Output = "pil"
) -> Tensor | np.ndarray | list[Image.Image]: ...
def to_images(samples: Tensor, output: Output = "pil") -> Tensor | np.ndarray | list[Image.Image]:
    """Samples in [-1, 1] as ``output``: the tensor itself (B, C, H, W) or any shape for other
    data; ``numpy``, a uint8 array (B, H, W, C) rounded from [-1, 1] to 0..255; or ``pil``, a list
    of B PIL images (mode L for one channel, RGB for three).

    Args:
        samples: a batch of samples on the data scale [-1, 1].
        output: ``"tensor"``, ``"numpy"`` or ``"pil"`` (the last two need images (B, C, H, W)).
    """
    if output == "tensor":
        return samples
    if output not in OUTPUTS:
        raise ValueError(f"output {output!r}: choose one of {', '.join(OUTPUTS)}")
    pixels = to_uint8_images(samples)
    if output == "numpy":
        return pixels
    if pixels.shape[-1] not in (1, 3):
        raise ValueError(f"output 'pil' needs 1 or 3 channels, got {pixels.shape[-1]}")
    return [Image.fromarray(p[..., 0] if p.shape[-1] == 1 else p) for p in pixels]
