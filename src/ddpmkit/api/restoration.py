"""The images and masks the API's restoration methods accept: a file, a PIL image or a tensor."""

from __future__ import annotations

from pathlib import Path

from PIL import Image
from torch import Tensor

from ddpmkit.pipeline.restoration import image_tensor, read_image, read_mask

ImageInput = str | Path | Image.Image | Tensor
"""An image: a file path, a PIL image, or a tensor (C, H, W) or (B, C, H, W) in [-1, 1]."""
MaskInput = str | Path | Tensor
"""A mask: a black-and-white file (white = known), or a tensor (1, H, W) with 1 = known."""


def as_image(image: ImageInput, shape: tuple[int, ...]) -> Tensor:
    """``image`` as a tensor in [-1, 1] of a model's per-sample ``shape`` (C, H, W).

    Args:
        image: a file path, a PIL image, or a tensor (returned as it is).
        shape: the model's (C, H, W); a file or PIL image of another size is an error.
    """
    if isinstance(image, Tensor):
        return image
    if isinstance(image, Image.Image):
        return image_tensor(image, shape)
    return read_image(image, shape)


def as_mask(mask: MaskInput, shape: tuple[int, ...], invert: bool = False) -> Tensor:
    """``mask`` as a (1, H, W) tensor with 1 at the known pixels.

    Args:
        mask: a black-and-white file (white = known) or a tensor (1, H, W) / (H, W) of 0 and 1.
        shape: the model's (C, H, W).
        invert: the mask marks the region to fill in instead (diffusers' and LaMa's convention).
    """
    if not isinstance(mask, Tensor):
        return read_mask(mask, shape, invert=invert)
    known = mask.float().reshape(1, *mask.shape[-2:])
    if tuple(known.shape[-2:]) != tuple(shape[-2:]):
        raise ValueError(f"mask: shape {tuple(mask.shape)} does not match the model's {shape}")
    return 1.0 - known if invert else known
