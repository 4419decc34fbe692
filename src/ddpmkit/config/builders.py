"""Objects built from a config: the schedule, the network, the loss."""

from __future__ import annotations

import dataclasses
import json
import math
from functools import partial

from torch import nn

from ddpmkit.config.schema import DiffusionConfig, ModelConfig, RunConfig
from ddpmkit.core.denoisers import NetworkDenoiser
from ddpmkit.core.schedules import NoiseSchedule
from ddpmkit.data.captions import all_captions
from ddpmkit.likelihood.gaussian import discretized_gaussian_log_likelihood
from ddpmkit.losses import HybridLoss, SimpleLoss, loss_weights, timestep_sampler
from ddpmkit.networks import MLPDenoiser, UNet
from ddpmkit.networks.diffusers_unet import DiffusersUNet, diffusers_sample_shape
from ddpmkit.networks.text import WordTokenizer, build_text_encoder, encoder_width
from ddpmkit.networks.text_unet import TextConditionedUNet


def build_schedule(config: DiffusionConfig) -> NoiseSchedule:
    """The noise schedule the config names: VE's geometric levels, or the β schedule's VP or
    sub-VP process."""
    if config.process == "ve":
        return NoiseSchedule.geometric(config.num_steps, config.sigma_min, config.sigma_max)
    schedule = _beta_schedule(config)
    return schedule.sub_vp() if config.process == "subvp" else schedule


def _beta_schedule(config: DiffusionConfig) -> NoiseSchedule:
    T = config.num_steps
    if config.schedule == "linear":
        return NoiseSchedule.linear(T, config.beta_start, config.beta_end)
    if config.schedule == "cosine":
        return NoiseSchedule.cosine(T, config.cosine_s)
    if config.schedule == "sigmoid":
        return NoiseSchedule.sigmoid(
            T, config.sigmoid_start, config.sigmoid_end, config.sigmoid_tau
        )
    if config.schedule == "custom" and config.betas is not None:
        return NoiseSchedule.from_betas(config.betas)
    raise ValueError(f"diffusion.schedule {config.schedule!r} is not known")


def build_network(config: ModelConfig) -> nn.Module:
    """The U-Net (with its text encoder when text-conditional) or the MLP, as the (resolved)
    model config says."""
    if config.kind == "mlp":
        return MLPDenoiser(config.mlp)
    if config.kind == "diffusers" and config.diffusers_unet is not None:
        return DiffusersUNet(config.diffusers_unet)
    if not config.text_conditional:
        return UNet(config.unet)
    encoder = build_text_encoder(config.text)
    return TextConditionedUNet(UNet(config.unet), encoder)


def build_loss(
    config: DiffusionConfig, schedule: NoiseSchedule, num_levels: int = 256
) -> SimpleLoss | HybridLoss:
    """L_simple (weighted per t), L_hybrid or L_vlb, with the configured sampling of t.

    ``num_levels`` are the data's quantization levels, for L_vlb's decoder term.
    """
    timesteps = timestep_sampler(
        config.timestep_sampling, schedule, config.lognormal_mean, config.lognormal_std
    )
    if config.loss == "simple":
        weights = loss_weights(
            schedule, config.parameterization, config.loss_weighting, config.min_snr_gamma
        )
        return SimpleLoss(schedule, weights, timesteps)
    if config.loss_weighting != "uniform":
        raise ValueError(
            f"diffusion.loss_weighting {config.loss_weighting!r} applies to diffusion.loss = "
            f"'simple', not {config.loss!r}"
        )
    return HybridLoss(
        schedule, config.vlb_weight, timesteps,
        vlb_only=config.loss == "vlb",
        decoder=partial(discretized_gaussian_log_likelihood, num_levels=num_levels),
        variance="learned" if config.learned_variance else "beta",
    )  # fmt: skip


def build_denoiser(
    network: nn.Module, schedule: NoiseSchedule, config: DiffusionConfig
) -> NetworkDenoiser:
    """The network read as a denoiser, with its parameterization and (learned) variance."""
    return NetworkDenoiser(network, schedule, config.parameterization, config.learned_variance)


def resolve_for_data(
    config: RunConfig,
    shape: tuple[int, ...],
    num_classes: int | None,
    class_names: tuple[str, ...] | None = None,
) -> RunConfig:
    """The config with the network's input and output shape and classes taken from the data
    (the autoencoder's latents for a latent model).

    With learned variances the network outputs twice the data's channels (mean, then Σ_θ). A
    text-conditional model gets the class names, the vocabulary of its captions and
    cross-attention as wide as its text encoder.
    """
    if config.model.text_conditional:
        config = _resolve_text(config, num_classes, class_names)
    if config.model.autoencoder is not None:
        config = _resolve_latent(config)
    model = config.model
    learned = config.diffusion.learned_variance
    classes = num_classes if model.class_conditional else None
    if classes is not None and model.label_dropout > 0:
        classes += 1  # the last embedding is the null class ∅ of classifier-free guidance
    if model.class_conditional and num_classes is None:
        raise ValueError("model.class_conditional is set but the data has no labels")
    if model.kind == "unet":
        if len(shape) != 3:
            raise ValueError(f"model.kind = 'unet' needs image data (C, H, W); the data is {shape}")
        if model.unet.sample_size != shape[1]:
            raise ValueError(
                f"model.unet.sample_size is {model.unet.sample_size} but the data are "
                f"{shape[1]}×{shape[2]}; set model.unet.sample_size = {shape[1]} "
                "(attention_resolutions are resolutions at that size)"
            )
        unet = dataclasses.replace(
            model.unet,
            in_channels=shape[0],
            out_channels=2 * shape[0] if learned else model.unet.out_channels,
            num_classes=classes,
        )
        model = dataclasses.replace(model, unet=unet)
    else:
        dim = math.prod(shape)  # images are flattened
        mlp = dataclasses.replace(
            model.mlp,
            dim=dim,
            out_dim=2 * dim if learned else model.mlp.out_dim,
            num_classes=classes,
        )
        model = dataclasses.replace(model, mlp=mlp)
    model = dataclasses.replace(model, sample_shape=tuple(shape))
    return dataclasses.replace(config, model=model)


def _resolve_text(
    config: RunConfig, num_classes: int | None, class_names: tuple[str, ...] | None
) -> RunConfig:
    model = config.model
    if num_classes is None:
        raise ValueError(
            "model.text_conditional: the captions are made from the data's classes, but the "
            "data has no labels (use labels_from_subfolders for a folder)"
        )
    names = class_names or tuple(str(k) for k in range(num_classes))
    text = model.text
    if text.kind == "builtin":
        vocabulary = WordTokenizer.vocabulary_of(all_captions(model.captions, names))
        text = dataclasses.replace(text, vocabulary=vocabulary)
    unet = dataclasses.replace(model.unet, cross_attention_dim=encoder_width(text))
    model = dataclasses.replace(model, class_names=names, text=text, unet=unet)
    return dataclasses.replace(config, model=model)


def _resolve_latent(config: RunConfig) -> RunConfig:
    if config.data.hflip:
        raise ValueError(
            "data.hflip with model.autoencoder: the latents are encoded once, so flip the images "
            "of the folder beforehand instead"
        )
    if config.train.eval_every:
        raise ValueError(
            "train.eval_every measures bits/dim of pixels; a latent model has none (use "
            "ddpmkit eval --nll ode for the latents' density)"
        )
    sample = dataclasses.replace(config.sample, clip_x0=False)  # latents are not in [-1, 1]
    return dataclasses.replace(config, sample=sample)


def class_labels_of(model: ModelConfig) -> tuple[int | None, int | None]:
    """(K, ∅): the data's class count and the null label of a resolved model config (or None)."""
    if model.text_conditional and model.class_names is not None:
        return len(model.class_names), (WordTokenizer.PAD if model.label_dropout > 0 else None)
    table = {
        "unet": model.unet.num_classes,
        "mlp": model.mlp.num_classes,
        "diffusers": json.loads(model.diffusers_unet or "{}").get("num_class_embeds"),
    }[model.kind]
    if not model.class_conditional or table is None:
        return None, None
    if model.label_dropout > 0:
        return table - 1, table - 1
    return table, None


def check_sample_shape(model: ModelConfig, where: str) -> None:
    """The stored per-sample shape must be the one the network was built for (a ``config.json``
    edited by hand could otherwise sample another size without a word)."""
    shape = model.sample_shape
    if model.kind == "unet":
        expected = (model.unet.in_channels, model.unet.sample_size)
        fits = shape is not None and len(shape) == 3 and tuple(shape[:2]) == expected
        network = f"in_channels {expected[0]}, sample_size {expected[1]}"
    elif model.kind == "diffusers":
        size = diffusers_sample_shape(json.loads(model.diffusers_unet or "{}"))
        fits, network = shape is not None and tuple(shape) == size, f"UNet2DModel of {size}"
    else:
        fits = shape is not None and math.prod(shape) == model.mlp.dim
        network = f"dim {model.mlp.dim}"
    if not fits:
        raise ValueError(
            f"{where}: model.sample_shape {shape} does not fit the network ({network}); "
            "was config.json edited?"
        )


def first_feature_map_values(model: ModelConfig, shape: tuple[int, ...]) -> int:
    """The values of one item's first-level feature map (what memory estimates scale by): a
    U-Net's width × the positions after its patches, else the item's own values."""
    values = math.prod(shape) if shape else 1
    if model.kind != "unet" or len(shape) != 3:
        return values
    unet = model.unet
    return max(unet.base_channels, shape[0]) * math.prod(shape[1:]) // unet.patch_size**2
