"""Image folders, .npy/.npz arrays, torchvision sets and PNG writers."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ddpmkit import DataConfig, load_data
from ddpmkit.data import (
    ArrayDataset,
    ImageFolderDataset,
    array_dataset,
    save_image_grid,
    save_scatter_png,
    to_uint8_images,
)
from ddpmkit.data.images import image_extensions
from ddpmkit.data.torchvision_sets import torchvision_arrays

# ---------------------------------------------------------------- image folders


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """cats/ (RGB 10×6 PNG, grayscale 7×7 PNG, nested RGBA), dogs/ (JPEG 5×9, BMP), noise files."""
    root = tmp_path / "images"
    (root / "cats" / "sub").mkdir(parents=True)
    (root / "dogs").mkdir()
    (root / ".hidden").mkdir()
    Image.new("RGB", (10, 6), (255, 0, 0)).save(root / "cats" / "a_red.png")
    Image.new("L", (7, 7), 128).save(root / "cats" / "b_gray.png")
    Image.new("RGBA", (4, 4), (0, 0, 255, 0)).save(root / "cats" / "sub" / "c_clear.png")
    Image.new("RGB", (5, 9), (0, 255, 0)).save(root / "dogs" / "d_green.jpg", quality=100)
    Image.new("RGB", (8, 8), (0, 0, 0)).save(root / "dogs" / "e_black.bmp")
    Image.new("RGB", (8, 8)).save(root / ".hidden" / "skipped.png")
    (root / "dogs" / "notes.txt").write_text("not an image")
    return root


def test_folder_sorted_recursive_shapes_and_colors(image_folder: Path) -> None:
    data = ImageFolderDataset(image_folder, (4, 6))
    names = [p.name for p in data.files]
    assert names == ["a_red.png", "b_gray.png", "c_clear.png", "d_green.jpg", "e_black.bmp"]
    assert data.shape == (3, 4, 6) and len(data) == 5
    red, label = data[0]
    assert red.shape == (3, 4, 6) and red.dtype == torch.float32 and label.item() == -1
    assert torch.allclose(red, torch.tensor([1.0, -1.0, -1.0])[:, None, None])
    gray, _ = data[1]
    assert torch.allclose(gray, torch.full((3, 4, 6), 128 / 127.5 - 1.0), atol=1e-6)
    clear, _ = data[2]  # fully transparent: composited onto white
    assert torch.allclose(clear, torch.ones(3, 4, 6))
    green, _ = data[3]
    assert torch.allclose(green[1], torch.ones(4, 6), atol=0.02)
    assert green.min() >= -1.0 and green.max() <= 1.0


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_folder_channel_conversion(image_folder: Path, channels: int) -> None:
    data = ImageFolderDataset(image_folder, 5, channels=channels)
    assert data.shape == (channels, 5, 5)
    gray, _ = data[1]
    assert gray.shape == (channels, 5, 5)
    assert torch.allclose(gray[:1], torch.full((1, 5, 5), 128 / 127.5 - 1.0), atol=1e-6)
    if channels == 4:
        assert torch.equal(gray[3], torch.ones(5, 5))  # opaque
        assert torch.equal(data[2][0][3], -torch.ones(5, 5))  # transparent alpha kept


def test_folder_center_crop_non_square(tmp_path: Path) -> None:
    root = tmp_path / "crop"
    root.mkdir()
    pixels = np.zeros((2, 4), dtype=np.uint8)
    pixels[:, 2:] = 255  # left half black, right half white
    Image.fromarray(pixels).save(root / "halves.png")
    x, _ = ImageFolderDataset(root, (2, 2), channels=1)[0]  # no resize, crop columns 1..2
    assert torch.equal(x[0], torch.tensor([[-1.0, 1.0], [-1.0, 1.0]]))
    wide, _ = ImageFolderDataset(root, (1, 6), channels=1)[0]  # shrink to 1 row, keep 6 columns
    assert wide.shape == (1, 1, 6) and wide[0, 0, 0] < 0 < wide[0, 0, -1]


def test_folder_labels_from_subfolders(image_folder: Path) -> None:
    data = ImageFolderDataset(image_folder, 4, labels_from_subfolders=True)
    assert data.classes == ["cats", "dogs"]
    assert [int(data[i][1]) for i in range(len(data))] == [0, 0, 0, 1, 1]
    Image.new("RGB", (4, 4)).save(image_folder / "loose.png")
    with pytest.raises(ValueError, match=r"loose\.png"):
        ImageFolderDataset(image_folder, 4, labels_from_subfolders=True)


def test_folder_errors_name_the_path(tmp_path: Path, image_folder: Path) -> None:
    with pytest.raises(FileNotFoundError, match="missing"):
        ImageFolderDataset(tmp_path / "missing", 4)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty"):
        ImageFolderDataset(tmp_path / "empty", 4)
    (image_folder / "dogs" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(ValueError, match=r"broken\.png"):
        ImageFolderDataset(image_folder, 4)
    lazy = ImageFolderDataset(image_folder, 4, check_files=False)
    index = [p.name for p in lazy.files].index("broken.png")
    with pytest.raises(ValueError, match=r"broken\.png"):
        lazy[index]


def _truncated_jpeg(path: Path) -> None:
    """A 64×48 JPEG cut at 90%: its header is intact, so only decoding it finds the damage."""
    noise = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(path, quality=90)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.9)])


def test_bad_files_are_found_before_training_or_left_out(tmp_path: Path) -> None:
    root = tmp_path / "mixed"
    root.mkdir()
    noise = np.random.default_rng(1).integers(0, 256, (12, 12, 3), dtype=np.uint8)
    for i in range(4):
        Image.fromarray(noise).save(root / f"good{i}.png")
    _truncated_jpeg(root / "cut.jpg")
    Image.fromarray(np.ones((12, 12), np.float32)).save(root / "float.tiff")  # mode F
    (root / "empty.png").write_bytes(b"")
    with pytest.raises(ValueError, match=r"cut\.jpg: image file is truncated.*skip_bad_files"):
        ImageFolderDataset(root, 8)
    with pytest.warns(UserWarning, match=r"left out 3 unreadable") as caught:
        data = ImageFolderDataset(root, 8, skip_bad_files=True)
    message = str(caught[0].message)
    assert all(name in message for name in ("cut.jpg", "empty.png", "float.tiff", "mode F"))
    assert [p.name for p in data.files] == [f"good{i}.png" for i in range(4)]
    assert all(data[i][0].shape == (3, 8, 8) for i in range(4))
    for i in range(4):
        (root / f"good{i}.png").unlink()
    with pytest.raises(ValueError, match=r"none of the 3 image files .* can be read"):
        ImageFolderDataset(root, 8, skip_bad_files=True)
    with pytest.raises(ValueError, match="skip_bad_files applies only to 'folder'"):
        DataConfig(source="digits", skip_bad_files=True)


def test_mixed_sizes_are_resized_and_enlargement_is_warned(tmp_path: Path) -> None:
    root = tmp_path / "sizes"
    root.mkdir()
    Image.new("L", (16, 10), 200).save(root / "a_wide.png")
    Image.new("L", (9, 30), 100).save(root / "b_tall.png")
    Image.new("I;16", (12, 12), 65535).save(root / "c_deep.png")
    data = ImageFolderDataset(root, 8, channels=1)
    assert [tuple(data[i][0].shape) for i in range(3)] == [(1, 8, 8)] * 3
    assert float(data[2][0].min()) == 1.0  # 16-bit white is white
    with pytest.warns(UserWarning, match=r"2 of 3 images .* smaller than 11×11 \(e\.g\. 10×16\)"):
        ImageFolderDataset(root, 11, channels=1)


def test_load_data_folder_split(image_folder: Path) -> None:
    config = DataConfig(
        source="folder",
        path=str(image_folder),
        image_size=(4, 6),
        channels=1,
        labels_from_subfolders=True,
        heldout_fraction=0.4,
    )
    train, heldout = load_data(config), load_data(config, "heldout")
    assert train.shape == heldout.shape == (1, 4, 6) and train.kind == "image"
    assert train.num_classes == 2 and (len(train.dataset), len(heldout.dataset)) == (3, 2)
    assert set(train.dataset.files).isdisjoint(heldout.dataset.files)
    x, label = heldout.dataset[0]
    assert x.shape == (1, 4, 6) and label.item() in (0, 1)


# ---------------------------------------------------------------- arrays


def _expected(images_nchw: np.ndarray) -> torch.Tensor:
    if images_nchw.dtype == np.uint8:
        return torch.from_numpy(images_nchw.astype(np.float32) / 127.5 - 1.0)
    if images_nchw.min() >= 0:
        return torch.from_numpy(images_nchw.astype(np.float32) * 2.0 - 1.0)
    return torch.from_numpy(images_nchw.astype(np.float32))


def _sample_images(dtype: str, channels: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    shape = (6, channels, 5, 7)
    if dtype == "uint8":
        return rng.integers(0, 256, shape, dtype=np.uint8)
    if dtype == "unit":
        return rng.random(shape).astype(np.float32)
    return (rng.random(shape) * 2 - 1).astype(np.float64)


@pytest.mark.parametrize("dtype", ["uint8", "unit", "signed"])
@pytest.mark.parametrize("layout", ["NHW", "NHWC", "NCHW"])
def test_array_layouts_and_value_rules(tmp_path: Path, dtype: str, layout: str) -> None:
    channels = 1 if layout == "NHW" else 3
    images = _sample_images(dtype, channels)  # (N, C, H, W)
    stored = {"NHW": images[:, 0], "NHWC": images.transpose(0, 2, 3, 1), "NCHW": images}[layout]
    np.save(tmp_path / "x.npy", stored)
    data = array_dataset(tmp_path / "x.npy")
    assert data.shape == (channels, 5, 7) and len(data) == 6
    x, label = data[4]
    assert x.dtype == torch.float32 and label.item() == -1
    assert torch.allclose(x, _expected(images)[4], atol=1e-6)


@pytest.mark.parametrize(
    ("shape", "layout"), [((2, 3, 4, 4), (3, 4, 4)), ((2, 4, 4, 3), (3, 4, 4))]
)
def test_array_ambiguous_layout_prefers_square(tmp_path: Path, shape: tuple, layout: tuple) -> None:
    np.save(tmp_path / "x.npy", np.zeros(shape, dtype=np.uint8))
    assert array_dataset(tmp_path / "x.npy").shape == layout
    np.save(tmp_path / "y.npy", np.zeros((2, 3, 3, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"y\.npy"):
        array_dataset(tmp_path / "y.npy")


def test_array_vectors_and_resize(tmp_path: Path) -> None:
    vectors = np.arange(12, dtype=np.float64).reshape(4, 3)
    np.save(tmp_path / "v.npy", vectors)
    data = array_dataset(tmp_path / "v.npy")
    assert data.shape == (3,) and torch.equal(data[1][0], torch.tensor([3.0, 4.0, 5.0]))
    np.save(tmp_path / "img.npy", np.full((2, 6, 4), 255, dtype=np.uint8))
    resized = array_dataset(tmp_path / "img.npy", image_size=(3, 5))
    assert resized.shape == (1, 3, 5) and torch.allclose(resized[0][0], torch.ones(1, 3, 5))


def test_npz_keys_and_labels(tmp_path: Path) -> None:
    images = np.zeros((5, 4, 4, 3), dtype=np.uint8)
    np.savez(tmp_path / "a.npz", images=images, labels=np.array([0, 2, 1, 2, 0]))
    data = array_dataset(tmp_path / "a.npz")
    assert data.shape == (3, 4, 4) and [int(data[i][1]) for i in range(5)] == [0, 2, 1, 2, 0]
    np.savez(tmp_path / "b.npz", x=images, other=images, y=np.arange(5))
    with pytest.raises(ValueError, match=r"b\.npz.*array_key"):
        array_dataset(tmp_path / "b.npz")
    assert int(array_dataset(tmp_path / "b.npz", key="x")[3][1]) == 3
    with pytest.raises(ValueError, match=r"b\.npz.*'missing'"):
        array_dataset(tmp_path / "b.npz", key="missing")
    np.savez(tmp_path / "c.npz", x=images, labels=np.arange(4))
    with pytest.raises(ValueError, match=r"c\.npz.*'labels'"):
        array_dataset(tmp_path / "c.npz")
    np.savez(tmp_path / "d.npz", x=images, labels=np.arange(5), y=np.arange(5))
    with pytest.raises(ValueError, match=r"d\.npz.*both"):
        array_dataset(tmp_path / "d.npz")


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((2, 3, 4, 5, 6), dtype=np.uint8), "shape"),
        (np.zeros((2, 5, 5, 5), dtype=np.uint8), "channels"),
        (np.zeros((2, 4, 4), dtype=np.int64), "uint8"),
        (np.full((2, 4, 4), 200.0), "255"),
        (np.full((2, 4, 4), -3.0), "min"),
        (np.full((2, 4, 4), np.nan), "NaN"),
    ],
)
def test_array_errors_name_file_and_problem(
    tmp_path: Path, array: np.ndarray, message: str
) -> None:
    np.savez(tmp_path / "bad.npz", data=array)
    with pytest.raises(ValueError, match=rf"bad\.npz.*'data'.*{message}"):
        array_dataset(tmp_path / "bad.npz", key="data")


def test_array_missing_file_and_wrong_suffix(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope\.npy"):
        array_dataset(tmp_path / "nope.npy")
    (tmp_path / "data.csv").write_text("1,2")
    with pytest.raises(ValueError, match=r"data\.csv"):
        array_dataset(tmp_path / "data.csv")


def test_load_data_array_split_and_classes(tmp_path: Path) -> None:
    labels = np.arange(20) % 4
    np.savez(tmp_path / "set.npz", x=np.zeros((20, 3, 6, 6), np.float32), y=labels)
    config = DataConfig(source="array", path=str(tmp_path / "set.npz"), heldout_fraction=0.25)
    train, heldout = load_data(config), load_data(config, "heldout")
    assert (len(train.dataset), len(heldout.dataset)) == (15, 5)
    assert train.num_classes == 4 and train.kind == "image" and train.shape == (3, 6, 6)
    np.save(tmp_path / "vec.npy", np.ones((10, 2), np.float32))
    vectors = load_data(DataConfig(source="array", path=str(tmp_path / "vec.npy")))
    assert vectors.kind == "vector" and vectors.shape == (2,) and vectors.num_classes is None


# ---------------------------------------------------------------- torchvision


def _fake_torchvision(monkeypatch: pytest.MonkeyPatch, present: bool, online: bool) -> list[bool]:
    calls: list[bool] = []

    class FakeCifar:
        def __init__(self, root: str, train: bool, download: bool) -> None:
            calls.append(download)
            if not download and not present:
                raise RuntimeError("Dataset not found or corrupted.")
            if download and not online:
                raise OSError("network unreachable")
            n = 4 if train else 2
            self.data = np.full((n, 32, 32, 3), 255, dtype=np.uint8)
            self.targets = list(range(n))

    module = types.ModuleType("torchvision")
    module.datasets = types.SimpleNamespace(CIFAR10=FakeCifar, MNIST=FakeCifar)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torchvision", module)
    return calls


def test_torchvision_uses_present_files_and_downloads_only_if_absent(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls = _fake_torchvision(monkeypatch, present=True, online=False)
    images, labels = torchvision_arrays("cifar10", tmp_path, "heldout")
    assert images.shape == (2, 3, 32, 32) and labels.tolist() == [0, 1] and calls == [False]
    calls = _fake_torchvision(monkeypatch, present=False, online=True)
    loaded = load_data(DataConfig(source="cifar10", path=str(tmp_path)))
    assert calls == [False, True] and len(loaded.dataset) == 4 and loaded.shape == (3, 32, 32)
    assert torch.equal(loaded.dataset[0][0], torch.ones(3, 32, 32))
    _fake_torchvision(monkeypatch, present=False, online=False)
    with pytest.raises(RuntimeError, match="download failed"):
        torchvision_arrays("mnist", tmp_path, "train")


def test_torchvision_missing_tells_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torchvision", None)  # import torchvision -> ImportError
    with pytest.raises(ImportError, match=r"ddpmkit\[vision\]"):
        load_data(DataConfig(source="mnist", path="unused"))


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def test_real_torchvision_mnist_from_local_files(tmp_path: Path) -> None:
    pytest.importorskip("torchvision")
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, n in (("train", 3), ("t10k", 2)):
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", np.full((n, 28, 28), 255, np.uint8))
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(n, dtype=np.uint8))
    loaded = load_data(DataConfig(source="mnist", path=str(tmp_path)), "heldout")
    assert len(loaded.dataset) == 2 and loaded.shape == (1, 28, 28)
    x, label = loaded.dataset[1]
    assert torch.equal(x, torch.ones(1, 28, 28)) and label.item() == 1


# ---------------------------------------------------------------- PNG writers


def test_to_uint8_images_round_trip() -> None:
    pixels = torch.randint(0, 256, (3, 2, 4, 5), dtype=torch.uint8)
    x = pixels.float() / 127.5 - 1.0
    assert np.array_equal(to_uint8_images(x), pixels.permute(0, 2, 3, 1).numpy())
    assert to_uint8_images(torch.tensor([-5.0, 5.0]).view(1, 1, 1, 2)).tolist() == [[[[0], [255]]]]


@pytest.mark.parametrize(("channels", "mode"), [(1, "L"), (3, "RGB"), (4, "RGBA")])
def test_image_grid_png_round_trip(tmp_path: Path, channels: int, mode: str) -> None:
    pixels = torch.randint(0, 256, (5, channels, 3, 4), dtype=torch.uint8)
    x = pixels.float() / 127.5 - 1.0
    path = save_image_grid(x, tmp_path / "grid.png", nrow=2, upscale=2, padding=1)
    with Image.open(path) as img:
        assert img.mode == mode and img.size == (1 + 2 * (8 + 1), 1 + 3 * (6 + 1))
        grid = np.asarray(img).reshape(img.size[1], img.size[0], channels)
    expected = pixels.permute(0, 2, 3, 1).numpy().repeat(2, 1).repeat(2, 2)
    for i in range(5):
        top, left = 1 + (i // 2) * 7, 1 + (i % 2) * 9
        assert np.array_equal(grid[top : top + 6, left : left + 8], expected[i])
    assert (grid[0] == 255).all() and (grid[-7:, -9:] == 255).all()  # padding and empty cell


def test_writers_refuse_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "out" / "samples.png"
    x = torch.zeros(4, 1, 8, 8)
    assert save_image_grid(x, path) == path and path.exists()
    with pytest.raises(FileExistsError, match=r"samples\.png"):
        save_image_grid(x, path)
    save_image_grid(torch.ones(4, 1, 8, 8), path, overwrite=True, padding=0)
    with Image.open(path) as img:
        assert np.asarray(img).min() == 255
    points = torch.tensor([[0.0, 0.0], [1.0, -1.0], [float("nan"), 0.0]])
    scatter = save_scatter_png(points, tmp_path / "points.png", size=64)
    with Image.open(scatter) as img:
        assert img.size == (64, 64) and img.mode == "RGB"
        assert np.asarray(img).min() < 255  # something was drawn
    with pytest.raises(FileExistsError, match=r"points\.png"):
        save_scatter_png(points, scatter)


def test_folder_reads_16_bit_and_webp(tmp_path: Path) -> None:
    root = tmp_path / "more"
    root.mkdir()
    Image.fromarray(np.full((4, 4), 65535, dtype=np.uint16)).save(root / "a_deep.png")
    if ".webp" in image_extensions():
        Image.new("RGB", (4, 4), (0, 0, 255)).save(root / "b_blue.webp", lossless=True)
    data = ImageFolderDataset(root, 4)
    assert torch.equal(data[0][0], torch.ones(3, 4, 4))  # 16-bit white stays white
    if len(data) == 2:
        assert torch.equal(data[1][0][2], torch.ones(4, 4))


@pytest.mark.parametrize(
    ("value_range", "image_size", "labelled"),
    [("uint8", None, True), ("unit", (5, 7), False), ("signed", (12, 12), True)],
)
def test_array_batch_equals_stacked_items(
    value_range: str, image_size: tuple[int, int] | None, labelled: bool
) -> None:
    """The trainer's one-go batch is exactly the stack of the items it replaces."""
    generator = torch.Generator().manual_seed(0)
    data = torch.randint(0, 256, (9, 3, 8, 10), generator=generator, dtype=torch.uint8)
    if value_range != "uint8":
        data = data.float() / 255
    labels = torch.arange(9) % 4 if labelled else None
    dataset = ArrayDataset(data, labels, value_range, image_size)
    indices = [7, 2, 2, 5]
    x, y = dataset.batch(indices)
    items = [dataset[i] for i in indices]
    torch.testing.assert_close(x, torch.stack([item[0] for item in items]), rtol=0, atol=1e-6)
    assert torch.equal(y, torch.stack([item[1] for item in items]))
