"""Any diffusers ``UNet2DModel`` as a ddpmkit network, by diffusers' own code.

ddpmkit's `UNet` reproduces the DDPM layouts exactly without diffusers
(``networks.diffusers_compat``); every other configuration diffusers can save (Skip and
ResnetDownsample blocks, Fourier or learned time embeddings, scale-shift norms, other activations,
class embeddings of the "timestep" or "identity" kind, non-square sizes, …) runs through the
installed diffusers itself, so its outputs are diffusers' by construction. Only the module is
built here; its weights are read from safetensors by the caller (no pickle, no remote code).
"""

from __future__ import annotations

import json
from typing import Any, cast

from torch import Tensor, nn


def diffusers_unet_class() -> type[nn.Module]:
    """diffusers' ``UNet2DModel`` class; ImportError naming the extra when diffusers is missing."""
    try:
        from diffusers import UNet2DModel
    except ImportError as error:
        raise ImportError(
            "this UNet2DModel configuration runs through diffusers itself, which is not "
            f"installed ({error}): pip install 'ddpmkit[diffusers]'"
        ) from None
    return cast(type[nn.Module], UNet2DModel)


class DiffusersUNet(nn.Module):
    """A ``UNet2DModel`` built from its ``config.json`` text, called as ddpmkit's networks are:
    ``network(x_t, t, class_labels) -> output`` with t the (fractional) training step.

    Args:
        config: the ``UNet2DModel`` config as JSON text (``model.diffusers_unet``).
    """

    def __init__(self, config: str) -> None:
        super().__init__()
        values: dict[str, Any] = json.loads(config)
        kwargs = {key: value for key, value in values.items() if not key.startswith("_")}
        self.unet = diffusers_unet_class()(**kwargs)
        self.integer_steps = kwargs.get("time_embedding_type") == "learned"  # a table of steps

    def forward(self, x_t: Tensor, t: Tensor, class_labels: Tensor | None = None) -> Tensor:
        """ε, x_0 or v (as the scheduler's ``prediction_type`` says) for x_t at step t."""
        if class_labels is not None:
            class_labels = class_labels.to(x_t.device)
        if self.integer_steps:  # a learned table is indexed by the integer step
            t = t.round().long()
        output = self.unet(x_t, t, class_labels=class_labels)
        return cast(Tensor, output.sample)


def diffusers_sample_shape(config: dict[str, Any]) -> tuple[int, int, int]:
    """(C, H, W) of one sample of a ``UNet2DModel`` config (``sample_size`` an int or (H, W))."""
    size = config.get("sample_size")
    if size is None:
        raise ValueError("the UNet2DModel config has no sample_size")
    height, width = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    return int(config.get("in_channels", 3)), height, width


def is_learned_variance(config: dict[str, Any]) -> bool:
    """The U-Net predicts a variance too: twice the input channels out."""
    return int(config.get("out_channels", 3)) == 2 * int(config.get("in_channels", 3))


__all__ = ["DiffusersUNet", "diffusers_sample_shape", "diffusers_unet_class", "is_learned_variance"]
