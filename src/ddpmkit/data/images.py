"""A folder of image files as a lazily loading torch Dataset of (x in [-1, 1], label) pairs.

Files (PNG, JPEG, BMP, TIFF, PPM/PGM, and WebP when Pillow supports it) are found recursively and sorted by
relative path; names starting with "." (hidden files and folders) are skipped. Each image is
resized so its shorter side fits the target (bicubic, antialiased when shrinking), center-cropped
to (H, W) and converted to 1 (L), 3 (RGB) or 4 (RGBA) channels; transparency is composited onto
white when the alpha channel is dropped. 16-bit grayscale is rescaled to 8 bits; 32-bit integer
or float images, LAB and HSV are refused by name. Mixed sizes are fine (each file is resized);
files smaller than the target are counted in a warning, since they are enlarged.
"""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError, features
from torch import Tensor
from torch.utils.data import Dataset

_MODES = {1: "L", 3: "RGB", 4: "RGBA"}
READABLE_MODES = frozenset(
    ("1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "I;16")
) | {"I;16L", "I;16B", "I;16N"}
"""Pillow modes that convert to L/RGB/RGBA without guessing (8-bit, or 16-bit grayscale)."""
_READ_ERRORS = (
    OSError,
    UnidentifiedImageError,
    ValueError,
    SyntaxError,
    Image.DecompressionBombError,
)


def image_extensions() -> tuple[str, ...]:
    """Lower-case suffixes of the image files this Pillow build can read."""
    extensions = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".ppm", ".pgm")
    return (*extensions, ".webp") if features.check("webp") else extensions


def find_images(root: str | Path) -> list[Path]:
    """Image files under root, recursively, sorted by relative path; hidden entries skipped."""
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"image folder not found: {root}")
    if not root.is_dir():
        raise ValueError(f"not a folder: {root}")
    suffixes = image_extensions()
    files = [
        p
        for p in root.rglob("*")
        if p.is_file()
        and p.suffix.lower() in suffixes
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    ]
    if not files:
        raise ValueError(f"no image files ({', '.join(suffixes)}) found under {root}")
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def subfolder_labels(root: Path, files: Sequence[Path]) -> tuple[np.ndarray, list[str]]:
    """Labels from first-level subfolder names (sorted class names -> 0, 1, ...) and the names."""
    names = []
    for path in files:
        parts = path.relative_to(root).parts
        if len(parts) < 2:
            raise ValueError(f"labels_from_subfolders: image {path} is not in a class subfolder")
        names.append(parts[0])
    classes = sorted(set(names))
    index = {name: i for i, name in enumerate(classes)}
    return np.array([index[name] for name in names], dtype=np.int64), classes


def _flatten_alpha(img: Image.Image) -> Image.Image:
    """RGB image with any transparency composited onto white."""
    rgba = img.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def convert_channels(img: Image.Image, channels: int) -> Image.Image:
    """img in mode L (1), RGB (3) or RGBA (4); 16-bit grayscale is rescaled to 8 bits."""
    if img.mode.startswith("I;16") or img.mode == "I":
        wide = np.asarray(img, dtype=np.float64)
        img = Image.fromarray(np.clip(np.round(wide / 257.0), 0, 255).astype(np.uint8))
    has_alpha = img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info
    if channels == 4:
        return img.convert("RGBA")
    if has_alpha:
        img = _flatten_alpha(img)
    return img.convert(_MODES[channels])


def resize_center_crop(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Scale so the image covers size = (H, W) (bicubic), then crop its center to (H, W)."""
    height, width = size
    scale = max(height / img.height, width / img.width)
    new_w = max(width, round(img.width * scale))
    new_h = max(height, round(img.height * scale))
    if (new_w, new_h) != img.size:
        img = img.resize((new_w, new_h), Image.Resampling.BICUBIC, reducing_gap=None)
    left, top = (new_w - width) // 2, (new_h - height) // 2
    return img.crop((left, top, left + width, top + height))


def check_mode(img: Image.Image, path: Path) -> None:
    """Raise ValueError unless img's mode is one ddpmkit converts without guessing
    (Pillow opens some 16-bit grayscale PNGs as 32-bit "I"; those are read as 16-bit)."""
    if img.mode in READABLE_MODES or (img.mode == "I" and img.format == "PNG"):
        return
    raise ValueError(
        f"mode {img.mode} is not read by ddpmkit (its value range is not known); save {path.name} "
        "as 8-bit L/RGB/RGBA or 16-bit grayscale"
    )


def read_image(path: Path, size: tuple[int, int], channels: int) -> Tensor:
    """One image file as a float32 (channels, H, W) tensor in [-1, 1]."""
    try:
        with Image.open(path) as opened:
            check_mode(opened, path)
            opened.load()
            img = ImageOps.exif_transpose(opened)
    except _READ_ERRORS as err:
        raise ValueError(f"cannot read image {path}: {err}") from err
    img = resize_center_crop(convert_channels(img, channels), size)
    pixels = np.asarray(img, dtype=np.uint8).reshape(size[0], size[1], channels)
    x = torch.from_numpy(pixels.copy()).permute(2, 0, 1).float()
    return x / 127.5 - 1.0


def check_readable(path: Path) -> tuple[int, int]:
    """The (width, height) of an image file that decodes completely in a readable mode; else a
    ValueError naming path. JPEGs are decoded at reduced scale, which still reads every byte, so
    a truncated file is found here rather than mid-run."""
    try:
        with Image.open(path) as img:
            check_mode(img, path)
            size: tuple[int, int] = img.size
            img.draft(None, (1, 1))  # JPEG: the smallest scale the decoder offers
            img.load()
    except _READ_ERRORS as err:
        raise ValueError(f"cannot read image {path}: {err}") from err
    return size


def checked_files(
    files: Sequence[Path], size: tuple[int, int], skip_bad_files: bool, root: Path
) -> list[Path]:
    """The files that decode, checked in parallel threads; the first bad one is an error, or, with
    ``skip_bad_files``, every bad one is left out with one warning that names them."""
    height, width = size

    def check(path: Path) -> tuple[int, int] | str:
        try:
            return check_readable(path)
        except ValueError as error:
            return str(error)

    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        results = list(pool.map(check, files))
    bad = [result for result in results if isinstance(result, str)]
    if bad and not skip_bad_files:
        raise ValueError(f"{bad[0]} (pass --data.skip_bad_files true to leave such files out)")
    good = [
        path for path, result in zip(files, results, strict=True) if not isinstance(result, str)
    ]
    if not good:
        raise ValueError(f"none of the {len(files)} image files under {root} can be read: {bad[0]}")
    if bad:
        shown = "; ".join(bad[:3]) + ("; …" if len(bad) > 3 else "")
        warnings.warn(f"left out {len(bad)} unreadable image file(s): {shown}", stacklevel=3)
    small = [r for r in results if not isinstance(r, str) and (r[0] < width or r[1] < height)]
    if small:
        warnings.warn(
            f"{len(small)} of {len(good)} images under {root} are smaller than {height}×{width} "
            f"(e.g. {small[0][1]}×{small[0][0]}) and are enlarged, which blurs them",
            stacklevel=3,
        )
    return good


class ImageFolderDataset(Dataset[tuple[Tensor, Tensor]]):
    """(x, label) pairs from the image files under root; label is -1 without subfolder labels."""

    def __init__(
        self,
        root: str | Path,
        image_size: int | tuple[int, int],
        channels: int = 3,
        labels_from_subfolders: bool = False,
        check_files: bool = True,
        skip_bad_files: bool = False,
    ) -> None:
        """Scan root; with check_files, decode every file now (fail before training), leaving
        unreadable ones out with a warning when ``skip_bad_files``."""
        if channels not in _MODES:
            raise ValueError(f"channels must be 1, 3 or 4, got {channels!r}")
        size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        self.root = Path(root)
        self.image_size: tuple[int, int] = (int(size[0]), int(size[1]))
        self.channels = channels
        self.files: list[Path] = find_images(self.root)
        if check_files:
            self.files = checked_files(self.files, self.image_size, skip_bad_files, self.root)
        self.labels: np.ndarray | None = None
        self.classes: list[str] = []
        if labels_from_subfolders:
            self.labels, self.classes = subfolder_labels(self.root, self.files)

    @property
    def shape(self) -> tuple[int, int, int]:
        """Per-sample shape (C, H, W)."""
        return (self.channels, *self.image_size)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        x = read_image(self.files[index], self.image_size, self.channels)
        label = -1 if self.labels is None else int(self.labels[index])
        return x, torch.tensor(label, dtype=torch.int64)

    def subset(self, indices: Sequence[int] | np.ndarray) -> ImageFolderDataset:
        """The same dataset restricted to the given indices (classes unchanged)."""
        indices = np.asarray(indices, dtype=np.int64)
        part = copy.copy(self)
        part.files = [self.files[i] for i in indices]
        part.labels = None if self.labels is None else self.labels[indices]
        return part
