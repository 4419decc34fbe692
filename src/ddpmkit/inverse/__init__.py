"""Inverse problems with an unconditional diffusion prior: inpainting, DPS and SDEdit."""

from ddpmkit.inverse.dps import dps
from ddpmkit.inverse.operators import (
    Downsample,
    FunctionOperator,
    GaussianBlur,
    Linear,
    Mask,
    MeasurementOperator,
)
from ddpmkit.inverse.repaint import repaint, repaint_path
from ddpmkit.inverse.replacement import inpaint_replacement
from ddpmkit.inverse.sdedit import sdedit

__all__ = [
    "Downsample",
    "FunctionOperator",
    "GaussianBlur",
    "Linear",
    "Mask",
    "MeasurementOperator",
    "dps",
    "inpaint_replacement",
    "repaint",
    "repaint_path",
    "sdedit",
]
