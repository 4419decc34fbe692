"""Inverse problems with an unconditional diffusion prior: inpainting, DPS, DDRM, ΠGDM, SDEdit."""

from ddpmkit.inverse.ddrm import ddrm
from ddpmkit.inverse.dps import dps
from ddpmkit.inverse.operators import (
    Colorize,
    Downsample,
    FunctionOperator,
    GaussianBlur,
    Linear,
    Mask,
    MeasurementOperator,
)
from ddpmkit.inverse.pigdm import pigdm
from ddpmkit.inverse.repaint import repaint, repaint_path
from ddpmkit.inverse.replacement import inpaint_replacement
from ddpmkit.inverse.sdedit import sdedit
from ddpmkit.inverse.spectral import SpectralOperator

__all__ = [
    "Colorize",
    "Downsample",
    "FunctionOperator",
    "GaussianBlur",
    "Linear",
    "Mask",
    "MeasurementOperator",
    "SpectralOperator",
    "ddrm",
    "dps",
    "inpaint_replacement",
    "pigdm",
    "repaint",
    "repaint_path",
    "sdedit",
]
