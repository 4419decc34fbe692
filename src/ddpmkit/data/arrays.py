"""Images or vectors from .npy / .npz arrays, as a torch Dataset of (x, label) pairs.

Accepted layouts: vectors (N, D); images (N, H, W), (N, H, W, C) or (N, C, H, W) with C in
{1, 3, 4}. A 4-D array is channels-last when only its last axis could be C, channels-first when only
axis 1 could; when both could, the layout whose two remaining axes are equal (square) wins.

Value rule for images: uint8 -> x / 255 -> [0, 1] -> [-1, 1]; float with min >= 0 -> assumed
[0, 1] -> [-1, 1]; any other float -> assumed already in [-1, 1]. Values outside the assumed range
are an error. Vectors are used as they are (cast to float32).

Labels: a .npz may hold integer labels (N,) under "labels" or "y"; a .npy has none.
"""

from __future__ import annotations

import math
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import IO

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from ddpmkit.memory import require_memory

LABEL_KEYS = ("labels", "y")
_CHANNELS = (1, 3, 4)
VALUE_RANGES = ("uint8", "unit", "signed", "raw")
"""How stored values map to x: uint8 (0..255), unit ([0, 1]), signed ([-1, 1]), raw (as is)."""


class ArrayDataset(Dataset[tuple[Tensor, Tensor]]):
    """(x, label) pairs from an in-memory (N, ...) tensor, converted to float32 per item.

    Images (N, C, H, W) are mapped to [-1, 1] by value_range and, with image_size, resized so the
    shorter side fits (bicubic, antialiased) and center-cropped. Labels are -1 when absent.
    """

    def __init__(
        self,
        data: Tensor,
        labels: Tensor | None = None,
        value_range: str = "signed",
        image_size: tuple[int, int] | None = None,
    ) -> None:
        if value_range not in VALUE_RANGES:
            raise ValueError(f"value_range must be one of {VALUE_RANGES}, got {value_range!r}")
        if labels is not None and labels.shape != (len(data),):
            raise ValueError(f"labels shape {tuple(labels.shape)} does not match {len(data)} items")
        if image_size is not None and data.ndim != 4:
            raise ValueError(f"image_size needs (N, C, H, W) images, got shape {tuple(data.shape)}")
        self.data = data
        self.labels = None if labels is None else labels.to(torch.int64)
        self.value_range = value_range
        self.image_size = image_size

    @property
    def shape(self) -> tuple[int, ...]:
        """Per-sample shape."""
        if self.image_size is not None:
            return (int(self.data.shape[1]), *self.image_size)
        return tuple(int(s) for s in self.data.shape[1:])

    def __len__(self) -> int:
        return len(self.data)

    def _convert(self, x: Tensor) -> Tensor:
        """Stored values, one item or a batch of them, as float32 in [-1, 1] at image_size."""
        x = x.float()
        if self.value_range == "uint8":
            x = x / 127.5 - 1.0
        elif self.value_range == "unit":
            x = x * 2.0 - 1.0
        if self.image_size is not None:
            x = resize_center_crop_tensor(x, self.image_size)
        return x

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        label = -1 if self.labels is None else int(self.labels[index])
        return self._convert(self.data[index]), torch.tensor(label, dtype=torch.int64)

    def batch(self, indices: Sequence[int]) -> tuple[Tensor, Tensor]:
        """The items at ``indices`` as one (B, ...) tensor and (B,) labels, converted in one go:
        what stacking ``self[i]`` would give, without a Python call per item."""
        idx = torch.as_tensor(indices, dtype=torch.int64)
        labels = torch.full((len(idx),), -1) if self.labels is None else self.labels[idx]
        return self._convert(self.data[idx]), labels

    def subset(self, indices: Sequence[int] | np.ndarray) -> ArrayDataset:
        """The same dataset restricted to the given indices."""
        idx = torch.as_tensor(np.asarray(indices, dtype=np.int64))
        labels = None if self.labels is None else self.labels[idx]
        return ArrayDataset(self.data[idx], labels, self.value_range, self.image_size)


def resize_center_crop_tensor(x: Tensor, size: tuple[int, int]) -> Tensor:
    """(C, h, w) or (B, C, h, w) in [-1, 1] scaled to cover size = (H, W) (bicubic),
    center-cropped, clamped."""
    height, width = size
    scale = max(height / x.shape[-2], width / x.shape[-1])
    new_h = max(height, round(x.shape[-2] * scale))
    new_w = max(width, round(x.shape[-1] * scale))
    if (new_h, new_w) != tuple(x.shape[-2:]):
        batch = x if x.ndim == 4 else x[None]
        batch = F.interpolate(batch, size=(new_h, new_w), mode="bicubic", antialias=True)
        x = batch if x.ndim == 4 else batch[0]
    top, left = (new_h - height) // 2, (new_w - width) // 2
    return x[..., top : top + height, left : left + width].clamp(-1.0, 1.0)


def image_layout(shape: tuple[int, ...], where: str) -> str:
    """'NCHW' or 'NHWC' for a 4-D image array shape; ValueError naming where if undecidable."""
    last, first = shape[3] in _CHANNELS, shape[1] in _CHANNELS
    if last and first:
        if shape[2] == shape[3] and shape[1] != shape[2]:
            return "NCHW"
        if shape[1] == shape[2] and shape[2] != shape[3]:
            return "NHWC"
        raise ValueError(f"{where}: cannot tell channels-first from channels-last in shape {shape}")
    if last:
        return "NHWC"
    if first:
        return "NCHW"
    raise ValueError(f"{where}: 4-D images need 1, 3 or 4 channels on axis 1 or 3, got {shape}")


def as_nchw(array: np.ndarray, where: str) -> np.ndarray:
    """(N, H, W), (N, H, W, C) or (N, C, H, W) images as (N, C, H, W)."""
    if array.ndim == 3:
        return array[:, None]
    if array.ndim == 4:
        return array if image_layout(array.shape, where) == "NCHW" else array.transpose(0, 3, 1, 2)
    raise ValueError(f"{where}: images must be 3-D or 4-D, got shape {array.shape}")


def image_value_range(array: np.ndarray, where: str) -> str:
    """'uint8', 'unit' or 'signed' by the module's value rule; ValueError if values do not fit."""
    if array.dtype == np.uint8:
        return "uint8"
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"{where}: images must be uint8 (0..255) or float, not {array.dtype}")
    if array.size == 0 or not np.isfinite(array).all():
        raise ValueError(f"{where}: image array is empty or holds NaN/inf")
    low, high = float(array.min()), float(array.max())
    if high > 1.0:
        hint = " (0..255 values? store as uint8 or divide by 255)" if low >= 0 else ""
        raise ValueError(f"{where}: float images must lie in [0, 1] or [-1, 1]; max {high}{hint}")
    if low >= 0.0:
        return "unit"
    if low < -1.0:
        raise ValueError(f"{where}: float images must lie in [0, 1] or [-1, 1], min is {low}")
    return "signed"


def _pick_data_key(archive: np.lib.npyio.NpzFile, key: str | None, path: Path) -> str:
    keys = list(archive.files)
    if key is not None:
        if key not in keys:
            raise ValueError(f"{path}: no array under key {key!r}; keys are {keys}")
        return key
    candidates = [k for k in keys if k not in LABEL_KEYS]
    if len(candidates) != 1:
        raise ValueError(f"{path}: set array_key to one of {candidates} (keys are {keys})")
    return candidates[0]


def _read_labels(archive: np.lib.npyio.NpzFile, n: int, path: Path) -> np.ndarray | None:
    present = [k for k in LABEL_KEYS if k in archive.files]
    if len(present) > 1:
        raise ValueError(f"{path}: labels under both keys {present}; keep one")
    if not present:
        return None
    labels = archive[present[0]]
    where = f"{path}[{present[0]!r}]"
    if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"{where}: labels must be integers of shape ({n},), got {labels.dtype} {labels.shape}"
        )
    if n and labels.min() < 0:
        raise ValueError(f"{where}: labels must be >= 0, min is {labels.min()}")
    return labels.astype(np.int64)


def read_array_file(
    path: str | Path, key: str | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """The data array and optional labels of a .npy or .npz file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"array file not found: {path}")
    if path.suffix.lower() not in (".npy", ".npz"):
        raise ValueError(f"{path}: expected a .npy or .npz file")
    try:
        _check_array_sizes(path)
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(f"cannot read array file {path}: {err}") from err
    if isinstance(loaded, np.ndarray):
        if key is not None:
            raise ValueError(f"{path}: array_key {key!r} given, but a .npy holds a single array")
        return loaded, None
    with loaded as archive:
        data_key = _pick_data_key(archive, key, path)
        data = archive[data_key]
        if data.ndim == 0:
            raise ValueError(f"{path}[{data_key!r}]: expected (N, ...) data, got a scalar")
        return data, _read_labels(archive, len(data), path)


def _check_array_sizes(path: Path) -> None:
    """Before loading: each array's header shape must fit the bytes stored for it (a .npy's
    file, an .npz member's uncompressed size) and the memory available, so that a header
    claiming (10⁶, 10⁶) is an error naming the file, not an allocation."""
    if path.suffix.lower() == ".npy":
        with path.open("rb") as handle:
            _check_header(handle, path.stat().st_size, str(path))
        return
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if info.filename.endswith(".npy"):
                with archive.open(info) as handle:
                    _check_header(handle, info.file_size, f"{path}[{info.filename[:-4]!r}]")


def _check_header(handle: IO[bytes], stored: int, where: str) -> None:
    version = np.lib.format.read_magic(handle)
    read = {
        (1, 0): np.lib.format.read_array_header_1_0,
        (2, 0): np.lib.format.read_array_header_2_0,
    }
    if version not in read:
        return  # numpy reads (or refuses) other versions itself
    shape, _, dtype = read[version](handle)
    needed = math.prod(shape) * dtype.itemsize
    if needed > stored:
        raise ValueError(
            f"its header claims shape {shape} ({needed:,} bytes), but {stored:,} bytes are stored "
            "(a truncated or forged file)"
        )
    require_memory(needed, f"loading {where} ({shape}, {dtype})", torch.device("cpu"),
                   "use a smaller array file")  # fmt: skip


def array_dataset(
    path: str | Path, key: str | None = None, image_size: tuple[int, int] | None = None
) -> ArrayDataset:
    """An ArrayDataset of the file's vectors (N, D) or images (N, C, H, W), mapped by the rule."""
    data, labels = read_array_file(path, key)
    where = f"{path}" if key is None else f"{path}[{key!r}]"
    if len(data) == 0:
        raise ValueError(f"{where}: the array holds no items")
    label_tensor = None if labels is None else torch.from_numpy(labels)
    if data.ndim == 2:
        if image_size is not None:
            raise ValueError(f"{where}: image_size given, but the array holds vectors {data.shape}")
        if not (np.issubdtype(data.dtype, np.number) and np.isfinite(data).all()):
            raise ValueError(f"{where}: vectors must be finite numbers, got dtype {data.dtype}")
        return ArrayDataset(torch.from_numpy(data.astype(np.float32)), label_tensor, "raw")
    if data.ndim not in (3, 4):
        raise ValueError(
            f"{where}: expected (N, D), (N, H, W), (N, H, W, C) or (N, C, H, W), "
            f"got shape {data.shape}"
        )
    value_range = image_value_range(data, where)
    images = np.ascontiguousarray(as_nchw(data, where))
    if value_range != "uint8":
        images = images.astype(np.float32)
    return ArrayDataset(torch.from_numpy(images), label_tensor, value_range, image_size)
