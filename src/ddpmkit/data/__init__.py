"""Data: every dataset yields (x, label); x float32 in [-1, 1], label an int64 scalar (-1: none).

Sources: the bundled digits, 2-D toy distributions, image folders, .npy/.npz arrays, MNIST and
CIFAR-10 (torchvision). Configure with DataConfig, load with load_data.
"""

from ddpmkit.data.arrays import ArrayDataset, array_dataset
from ddpmkit.data.augment import hflip_batch
from ddpmkit.data.config import DataConfig
from ddpmkit.data.images import ImageFolderDataset
from ddpmkit.data.loading import (
    LoadedData,
    dataset_size,
    load_data,
    split_indices,
    stack_items,
)
from ddpmkit.data.mosaic import save_image_grid, save_scatter_png, to_uint8_images
from ddpmkit.data.toy import TOY_DISTRIBUTIONS, sample_toy

__all__ = [
    "TOY_DISTRIBUTIONS",
    "ArrayDataset",
    "DataConfig",
    "ImageFolderDataset",
    "LoadedData",
    "array_dataset",
    "dataset_size",
    "hflip_batch",
    "load_data",
    "sample_toy",
    "save_image_grid",
    "save_scatter_png",
    "split_indices",
    "stack_items",
    "to_uint8_images",
]
