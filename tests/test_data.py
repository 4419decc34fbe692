"""Data config, digits, toy distributions, splits and batch flips."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ddpmkit import DataConfig, load_data
from ddpmkit.data import TOY_DISTRIBUTIONS, hflip_batch, sample_toy, split_indices


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"source": "imagenet"}, "source"),
        ({"source": "folder", "image_size": 8}, "path"),
        ({"source": "array"}, "path"),
        ({"source": "folder", "path": "x"}, "image_size"),
        ({"image_size": 0}, "image_size"),
        ({"image_size": (8, 8, 3)}, "image_size"),
        ({"source": "toy2d", "image_size": 8}, "image_size"),
        ({"source": "folder", "path": "x", "image_size": 8, "channels": 2}, "channels"),
        ({"channels": 3}, "channels"),
        ({"source": "toy2d", "hflip": True}, "hflip"),
        ({"labels_from_subfolders": True}, "labels_from_subfolders"),
        ({"toy": "spiral"}, "toy"),
        ({"toy_size": 0}, "toy_size"),
        ({"array_key": "x"}, "array_key"),
        ({"heldout_fraction": 1.0}, "heldout_fraction"),
        ({"heldout_fraction": -0.1}, "heldout_fraction"),
        ({"seed": -1}, "seed"),
    ],
)
def test_config_rejects_bad_values_naming_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        DataConfig(**kwargs)


def test_config_normalizes_image_size() -> None:
    assert DataConfig(image_size=8).image_hw == (8, 8)
    config = DataConfig(source="folder", path="p", image_size=[6, 10])  # e.g. from YAML
    assert config.image_size == (6, 10) and config.image_hw == (6, 10)
    assert DataConfig().image_hw is None
    hash(config)  # frozen and hashable


def test_digits_splits_shapes_range_and_balance() -> None:
    train, heldout = load_data(DataConfig(), "train"), load_data(DataConfig(), "heldout")
    assert (len(train.dataset), len(heldout.dataset)) == (1500, 297)
    assert train.shape == (1, 8, 8) and train.num_classes == 10 and train.kind == "image"
    for loaded in (train, heldout):
        xs, labels = zip(*(loaded.dataset[i] for i in range(len(loaded.dataset))), strict=True)
        x, y = torch.stack(xs), torch.stack(labels)
        assert x.dtype == torch.float32 and x.shape[1:] == (1, 8, 8)
        assert x.min() == -1.0 and x.max() == 1.0
        assert y.dtype == torch.int64 and y.shape == (len(xs),)
        counts = torch.bincount(y, minlength=10).float()
        share = counts / counts.sum()
        assert share.min() > 0.09 and share.max() < 0.11  # stratified: ~10% per class


def test_digits_resized_when_image_size_given() -> None:
    loaded = load_data(DataConfig(image_size=(16, 12)))
    x, _ = loaded.dataset[0]
    assert loaded.shape == (1, 16, 12) and x.shape == (1, 16, 12)
    assert x.min() >= -1.0 and x.max() <= 1.0


@pytest.mark.parametrize("name", list(TOY_DISTRIBUTIONS))
def test_toy_shape_scale_and_determinism(name: str) -> None:
    points = sample_toy(name, 4000, seed=3)
    assert points.shape == (4000, 2) and points.dtype == torch.float32
    assert torch.isfinite(points).all()
    assert points.mean(0).abs().max() < 0.15
    assert points.std(0).min() > 0.5 and points.std(0).max() < 1.5
    assert torch.equal(points, sample_toy(name, 4000, seed=3))
    assert not torch.equal(points, sample_toy(name, 4000, seed=4))


def test_toy_unknown_name() -> None:
    with pytest.raises(ValueError, match="spiral"):
        sample_toy("spiral", 10, 0)


def test_load_toy2d_heldout_is_an_independent_draw() -> None:
    config = DataConfig(source="toy2d", toy="8gaussians", toy_size=500, seed=7)
    train, heldout = load_data(config), load_data(config, "heldout")
    assert train.kind == "vector" and train.shape == (2,) and train.num_classes is None
    assert len(train.dataset) == len(heldout.dataset) == 500
    x, label = train.dataset[0]
    assert x.shape == (2,) and label.dtype == torch.int64 and label.item() == -1
    assert torch.equal(x, sample_toy("8gaussians", 500, 7)[0])
    assert torch.equal(heldout.dataset[0][0], sample_toy("8gaussians", 500, 8)[0])


def test_load_data_rejects_unknown_split() -> None:
    with pytest.raises(ValueError, match="split"):
        load_data(DataConfig(), "test")


def test_split_indices_partition_and_determinism() -> None:
    train = split_indices(50, 0.2, seed=1, split="train")
    heldout = split_indices(50, 0.2, seed=1, split="heldout")
    assert len(heldout) == 10 and len(train) == 40
    assert sorted([*train, *heldout]) == list(range(50))
    assert np.array_equal(heldout, split_indices(50, 0.2, seed=1, split="heldout"))
    assert not np.array_equal(heldout, split_indices(50, 0.2, seed=2, split="heldout"))
    assert len(split_indices(3, 0.01, 0, "heldout")) == 1  # a positive fraction holds out >= 1
    assert len(split_indices(50, 0.0, 0, "train")) == 50
    with pytest.raises(ValueError, match="heldout_fraction"):
        split_indices(50, 0.0, 0, "heldout")


def _coin_flips(count: int, seed: int) -> torch.Tensor:
    return torch.rand(count, generator=torch.Generator().manual_seed(seed)) < 0.5


def test_hflip_batch_is_deterministic_and_flips_about_half() -> None:
    x = torch.randn(1000, 2, 3, 5)
    out = hflip_batch(x, _coin_flips(1000, 0))
    again = hflip_batch(x, _coin_flips(1000, 0))
    assert torch.equal(out, again)
    same = (out == x).flatten(1).all(1)
    flipped = (out == x.flip(-1)).flatten(1).all(1)
    assert bool((same ^ flipped).all())  # every image is either untouched or mirrored
    assert 0.4 < flipped.float().mean().item() < 0.6
    other = hflip_batch(x, _coin_flips(1000, 1))
    assert not torch.equal(out, other)


def test_hflip_batch_leaves_input_and_rejects_non_images() -> None:
    x = torch.arange(8.0).reshape(1, 1, 2, 4).repeat(16, 1, 1, 1)
    before = x.clone()
    hflip_batch(x, _coin_flips(16, 0))
    assert torch.equal(x, before)
    with pytest.raises(ValueError, match="B, C, H, W"):
        hflip_batch(torch.zeros(4, 2), _coin_flips(4, 0))
    with pytest.raises(ValueError, match="a mask of 16 flags"):
        hflip_batch(x, _coin_flips(3, 0))
