"""Restoring images with a trained unconditional model: inpainting, super-resolution, deblurring, SDEdit.

The degraded measurement is y = A(x) + s·n of a clean image x in [-1, 1] (n standard normal,
s = ``noise_std``); the methods of ``ddpmkit.inverse`` sample restorations x̂ with A(x̂) ≈ y.
Image files are read at the model's size exactly (no resizing) and masks mark the known pixels
in white. The baselines ``mean_fill`` and ``bicubic_upsample`` are what a method must beat.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor

from ddpmkit.core.finite import require_finite
from ddpmkit.core.grids import build_grid
from ddpmkit.core.randomness import PerSampleGenerator, randn
from ddpmkit.core.thresholding import ClippedDenoiser
from ddpmkit.data.images import convert_channels
from ddpmkit.data.mosaic import save_image_grid
from ddpmkit.generation.sampling import check_sampling_memory
from ddpmkit.inverse import (
    Downsample,
    GaussianBlur,
    Mask,
    MeasurementOperator,
    SpectralOperator,
    ddrm,
    dps,
    inpaint_replacement,
    pigdm,
    repaint,
    sdedit,
)
from ddpmkit.outputs import picture_upscale
from ddpmkit.samplers.common import SampleResult, StepCallback
from ddpmkit.storage.model import TrainedModel

Task = Literal["inpaint", "super-resolution", "deblur", "edit"]
METHODS: dict[str, tuple[str, ...]] = {
    "inpaint": ("replacement", "repaint", "dps", "ddrm", "pigdm"),
    "super-resolution": ("dps", "ddrm", "pigdm"),
    "deblur": ("dps", "ddrm", "pigdm"),
    "edit": ("sdedit",),
}
"""The methods of each task; the first is its default."""
MEASUREMENT_SEED_OFFSET = 1 << 32
"""The measurement noise is seeded ``seed`` + this, apart from every sample's ``seed + i``."""
_READ_ERRORS = (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError)


@dataclass
class Restoration:
    """Clean inputs x (B, C, H, W), measurements y = A(x) + s·n, restorations (B, K, C, H, W),
    and the network evaluations each restoration cost.

    Attributes:
        input: (B, C, H, W) the clean images x in [-1, 1], on the CPU.
        measurement: y = A(x) + s·n per image, on the CPU: (B, C, H, W) for inpainting,
            deblurring and editing, (B, C, H/scale, W/scale) for super-resolution; the K
            restorations of an image share it.
        result: (B, K, C, H, W) the K = ``num_samples`` restorations of each image, clamped to
            [-1, 1], on the CPU.
        nfe_per_sample: the sampler's denoiser calls (all restorations run as one batch, so
            each restoration cost this many); 0 for an edit at strength 0.
    """

    input: Tensor
    measurement: Tensor
    result: Tensor
    nfe_per_sample: int = 0


def read_image(path: str | Path, shape: tuple[int, ...]) -> Tensor:
    """An image file (PNG, JPEG, …) as a (C, H, W) tensor in [-1, 1] for a model of ``shape``.

    Converted to the model's channels (L for 1, RGB for 3, transparency onto white); a size other
    than (H, W) is an error, never resized.
    """
    return image_tensor(_open_image(path, tuple(shape[-2:])), shape, f"image {path}")


def image_tensor(image: Image.Image, shape: tuple[int, ...], name: str = "image") -> Tensor:
    """A PIL image as a (C, H, W) tensor in [-1, 1] for a model of ``shape`` = (C, H, W).

    Converted to the model's channels (L for 1, RGB for 3, transparency onto white); a size other
    than (H, W) is an error naming ``name``, never resized.
    """
    channels, height, width = shape
    if (image.height, image.width) != (height, width):
        raise ValueError(
            f"{name}: is {image.width}×{image.height} pixels but the model takes "
            f"{width}×{height} (width×height); resize or crop it first"
        )
    converted = convert_channels(image, channels)
    pixels = np.asarray(converted, dtype=np.uint8).reshape(height, width, channels)
    return torch.from_numpy(pixels.copy()).permute(2, 0, 1).float() / 127.5 - 1.0


def read_mask(path: str | Path, shape: tuple[int, ...], invert: bool = False) -> Tensor:
    """A black-and-white mask file as a (1, H, W) tensor: 1 (white, ≥ 128) known, 0 to fill in.

    ``invert`` reads white as the region to fill in (diffusers' and LaMa's convention). Colour
    masks, and masks with no known or no unknown pixel, are errors naming the file.
    """
    image = _open_image(path, tuple(shape[-2:]))
    rgb = np.asarray(convert_channels(image, 3), dtype=np.uint8)
    if not ((rgb[..., 0] == rgb[..., 1]) & (rgb[..., 1] == rgb[..., 2])).all():
        raise ValueError(f"mask {path}: has coloured pixels; a mask is black and white")
    known = torch.from_numpy(rgb[..., 0] >= 128) != invert
    if known.all() or not known.any():
        which = "known" if known.all() else "to fill in"
        raise ValueError(f"mask {path}: every pixel is {which}; nothing to restore")
    return known[None].float()


def _open_image(path: str | Path, size: tuple[int, ...]) -> Image.Image:
    """The decoded, EXIF-rotated image at ``path``, which must be ``size`` = (H, W) pixels."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image {path}: no such file")
    try:
        with Image.open(path) as opened:
            opened.load()
            image = ImageOps.exif_transpose(opened)
    except _READ_ERRORS as error:
        raise ValueError(f"cannot read image {path}: {error}") from error
    if (image.height, image.width) != tuple(size):
        raise ValueError(
            f"image {path}: is {image.width}×{image.height} pixels but the model takes "
            f"{size[1]}×{size[0]} (width×height); resize or crop it first"
        )
    return image


def measurement_operator(
    task: Task,
    size: tuple[int, int],
    *,
    mask: Tensor | None = None,
    scale: int = 2,
    blur_sigma: float = 1.0,
) -> MeasurementOperator:
    """A of a task on (H, W) = ``size`` images: a mask, block means, a Gaussian blur, identity.

    The blur's kernel spans ±3σ, cut to ±(min(H, W) - 1) pixels, the most a reflected border allows.
    """
    if task == "inpaint":
        if mask is None:
            raise ValueError("inpainting needs a mask (white: known pixels)")
        return Mask(mask)
    if mask is not None:
        raise ValueError(f"a mask is only used for inpainting, not for {task}")
    if task == "super-resolution":
        if scale < 1 or size[0] % scale or size[1] % scale:
            raise ValueError(f"the scale {scale} must divide the image size {tuple(size)}")
        return Downsample(scale)
    if task == "deblur":
        if blur_sigma <= 0:
            raise ValueError(f"the blur's sigma must be > 0, got {blur_sigma}")
        half = min(math.ceil(3 * blur_sigma), min(size) - 1)
        return GaussianBlur(2 * half + 1, blur_sigma)
    if task == "edit":
        return lambda x: x
    raise ValueError(f"unknown task {task!r}; choose one of {', '.join(METHODS)}")


def restore(
    model: TrainedModel,
    image: Tensor,
    task: Task,
    method: str | None = None,
    *,
    mask: Tensor | None = None,
    scale: int = 2,
    blur_sigma: float = 1.0,
    noise_std: float = 0.0,
    steps: int | None = None,
    num_samples: int = 1,
    seed: int = 0,
    step_size: float = 1.0,
    jump_length: int = 10,
    resamplings: int = 10,
    strength: float = 0.5,
    sampler: str = "ancestral",
    progress: Callable[[int, int], None] | None = None,
) -> Restoration:
    """``num_samples`` restorations of each image (C, H, W) or (B, C, H, W) from y = A(x) + s·n.

    ``method`` (default the task's first in ``METHODS``): inpainting by replacement or RePaint
    (Lugmayr et al. 2022; ``jump_length``, ``resamplings``), DPS (Chung et al. 2023; step
    ``step_size``), DDRM (Kawar et al. 2022) or ΠGDM (Song J. et al. 2023); super-resolution by
    ``scale`` and deblurring (Gaussian of std ``blur_sigma``, border reflected) by DPS, DDRM or
    ΠGDM (these two take σ_y = ``noise_std`` into their update); ``edit`` by SDEdit (Meng et al.
    2022) of y with ``sampler`` at ``strength``. ``mask`` (1, H, W) or (B, 1, H, W) is 1 at the
    known pixels. The samplers walk ``steps`` of the T training steps (all by default; SDEdit at
    most t_0), x̂_0 clipped to [-1, 1]; restoration k of image b draws its noise from
    seed + b·K + k, so it does not depend on the batch. The results are clamped to [-1, 1].
    """
    method = _checked_method(model, task, method, noise_std, num_samples)
    x = _as_batch(image, model.shape).to(model.device)
    check_sampling_memory(model, count := x.shape[0] * num_samples, count)  # one batch
    if mask is not None:  # one per restoration
        mask = mask.to(model.device).expand(x.shape[0], 1, *x.shape[2:])
        mask = mask.repeat_interleave(num_samples, dim=0)
    size = (x.shape[2], x.shape[3])
    operator = measurement_operator(task, size, mask=mask, scale=scale, blur_sigma=blur_sigma)
    y_k = _measure(operator, x, num_samples, noise_std, seed)
    generator = PerSampleGenerator(range(seed, seed + count), model.device)
    callback = None if progress is None else _step_callback(progress)
    steps = steps or model.schedule.num_steps
    denoiser = ClippedDenoiser(model.denoiser)
    if task == "edit":
        out = sdedit(
            denoiser, model.schedule, y_k, strength, sampler=sampler, steps=steps,
            generator=generator, callback=callback,
        )  # fmt: skip
    else:
        out = _solve(
            method, denoiser, build_grid(model.schedule, "linspace", steps), (count, *model.shape),
            y_k, operator, mask, generator, callback,
            step_size=step_size, jump_length=jump_length, resamplings=resamplings,
            noise_std=noise_std,
        )  # fmt: skip
    result = require_finite(out.samples.detach(), "restorations", "the options made them overflow")
    shaped = result.clamp(-1.0, 1.0).float().cpu().reshape(x.shape[0], num_samples, *model.shape)
    return Restoration(x.cpu(), y_k[::num_samples].cpu(), shaped, out.nfe)


def _step_callback(progress: Callable[[int, int], None]) -> StepCallback:
    """A sampler's callback that reports (steps done, total) to ``progress``."""
    return lambda done, total, _x: progress(done, total)


def _checked_method(
    model: TrainedModel, task: Task, method: str | None, noise_std: float, num_samples: int
) -> str:
    """The method that restores ``task`` (the task's first by default); errors name what is
    wrong with the request."""
    if model.autoencoder is not None:
        raise ValueError(
            "restoration measures pixels, but this is a latent model (its samples are decoded "
            "latents); restore with a model trained on the images themselves"
        )
    methods = METHODS.get(task)
    if methods is None:
        raise ValueError(f"unknown task {task!r}; choose one of {', '.join(METHODS)}")
    method = method or methods[0]
    if method not in methods:
        raise ValueError(f"{task} takes the method {' or '.join(methods)}, not {method!r}")
    if noise_std < 0 or num_samples < 1:
        raise ValueError(
            f"need noise_std >= 0 and num_samples >= 1, got {noise_std}, {num_samples}"
        )
    return method


def _measure(
    operator: Callable[[Tensor], Tensor], x: Tensor, num_samples: int, noise_std: float, seed: int
) -> Tensor:
    """y = A(x) + s·n for each of the ``num_samples`` copies of every image, which share its
    measurement noise n (seeded by ``seed``)."""
    y_k = operator(x.repeat_interleave(num_samples, dim=0))
    if noise_std > 0:
        noise_seed = torch.Generator().manual_seed(seed + MEASUREMENT_SEED_OFFSET)
        noise = randn((x.shape[0], *y_k.shape[1:]), noise_seed, y_k.dtype, x.device)
        y_k = y_k + noise_std * noise.repeat_interleave(num_samples, dim=0)
    return y_k


def _solve(
    method: str,
    denoiser: ClippedDenoiser,
    sigmas: Tensor,
    shape: tuple[int, ...],
    y: Tensor,
    operator: MeasurementOperator,
    mask: Tensor | None,
    generator: PerSampleGenerator,
    callback: StepCallback | None,
    *,
    step_size: float,
    jump_length: int,
    resamplings: int,
    noise_std: float,
) -> SampleResult:
    """Run the inverse-problem sampler ``method`` from fresh noise x_T on y."""
    x_T = randn(shape, generator, y.dtype, y.device)
    if method in ("ddrm", "pigdm"):
        if mask is not None and not bool((mask == mask[:1]).all()):
            raise ValueError(f"{method} decomposes one operator: give every image the same mask")
        single = Mask(mask[:1]) if mask is not None else operator
        spectral = SpectralOperator.of(single, shape[1:])
        solver = ddrm if method == "ddrm" else pigdm
        return solver(
            denoiser, sigmas, x_T, y, spectral, noise_std=noise_std, generator=generator,
            callback=callback,
        )  # fmt: skip
    if method == "dps":
        return dps(
            denoiser, sigmas, x_T, y, operator, step_size=step_size, generator=generator,
            callback=callback,
        )  # fmt: skip
    assert mask is not None  # inpainting: ``measurement_operator`` checked it
    if method == "repaint":
        return repaint(
            denoiser, sigmas, x_T, y, mask, jump_length=jump_length, resamplings=resamplings,
            generator=generator, callback=callback,
        )  # fmt: skip
    return inpaint_replacement(
        denoiser, sigmas, x_T, y, mask, generator=generator, callback=callback
    )


def _as_batch(image: Tensor, shape: tuple[int, ...]) -> Tensor:
    """image (C, H, W) or (B, C, H, W) as a float32 batch; its per-image shape must be ``shape``."""
    x = image[None] if image.ndim == 3 else image
    if x.ndim != 4 or tuple(x.shape[1:]) != tuple(shape):
        raise ValueError(
            f"the model takes images of shape {tuple(shape)}, got {tuple(image.shape)}"
        )
    return x.float()


def panel_images(restoration: Restoration) -> Tensor:
    """Per image, in a row: x, y (nearest-upsampled to x's size), then its K restorations."""
    x, y, result = restoration.input, restoration.measurement, restoration.result
    shown = F.interpolate(y, size=x.shape[2:], mode="nearest").clamp(-1.0, 1.0)
    rows = torch.cat([x[:, None], shown[:, None], result], dim=1)
    return rows.flatten(0, 1)


def save_panel(restoration: Restoration, path: str | Path) -> Path:
    """One PNG of ``panel_images``, 2 + K per row under column titles, tiny images magnified;
    refuses to overwrite."""
    images = panel_images(restoration)
    count = restoration.result.shape[1]
    titles = ["image", "measured", *(f"result {k + 1}" for k in range(count))]
    upscale = picture_upscale(images.shape[2])
    return save_image_grid(images, path, nrow=2 + count, upscale=upscale, titles=titles)


def mean_fill(image: Tensor, mask: Tensor) -> Tensor:
    """Baseline inpainting: every unknown pixel (mask 0) set to its channel's mean over the known."""
    mask = mask.to(image).expand_as(image)
    known_mean = (image * mask).sum(dim=(-2, -1), keepdim=True) / mask.sum(
        dim=(-2, -1), keepdim=True
    )
    return mask * image + (1.0 - mask) * known_mean


def bicubic_upsample(low: Tensor, scale: int) -> Tensor:
    """Baseline super-resolution: bicubic interpolation of (B, C, h, w) by ``scale``, clamped."""
    high = F.interpolate(low, scale_factor=scale, mode="bicubic", align_corners=False)
    return high.clamp(-1.0, 1.0)
