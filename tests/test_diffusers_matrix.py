"""Every UNet2DModel configuration diffusers can save loads in ddpmkit and computes what diffusers
computes: random diffusers models of many configurations, saved by diffusers' own
``save_pretrained``, read by ``ddpmkit.load``, outputs compared for the same input (issue 27).

Layouts ddpmkit's U-Net reproduces load into it (``model.kind`` "unet", no diffusers needed);
the rest run through the installed diffusers (``model.kind`` "diffusers")."""

import json

import pytest
import torch

import ddpmkit

diffusers = pytest.importorskip("diffusers")

BASE = {
    "sample_size": 16, "in_channels": 3, "out_channels": 3, "block_out_channels": (16, 32),
    "layers_per_block": 1, "norm_num_groups": 8, "attention_head_dim": 8,
    "down_block_types": ("DownBlock2D", "AttnDownBlock2D"),
    "up_block_types": ("AttnUpBlock2D", "UpBlock2D"),
}  # fmt: skip
"""diffusers' defaults for everything not named: flip_sin_to_cos, freq_shift 0, padding 1, …"""
GOOGLE = {"flip_sin_to_cos": False, "freq_shift": 1, "downsample_padding": 0, "norm_eps": 1e-6}

CONFIGS = {  # name: (changes to BASE, the network ddpmkit builds for it)
    "diffusers defaults": ({}, "unet"),
    "google/ddpm layout": (GOOGLE, "unet"),
    "flip_sin_to_cos false": ({"flip_sin_to_cos": False}, "unet"),
    "freq_shift 1": ({"freq_shift": 1}, "unet"),
    "downsample_padding 0": ({"downsample_padding": 0}, "unet"),
    "norm_eps 1e-3": ({"norm_eps": 1e-3}, "unet"),
    "norm_num_groups 4": ({"norm_num_groups": 4}, "unet"),
    "attention_head_dim 4": ({"attention_head_dim": 4}, "unet"),
    "one channel": ({"in_channels": 1, "out_channels": 1}, "unet"),
    "learned variance": ({"out_channels": 6}, "unet"),
    "two resnets per level": ({"layers_per_block": 2}, "unet"),
    "three levels": ({"block_out_channels": (16, 16, 32),
                      "down_block_types": ("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
                      "up_block_types": ("AttnUpBlock2D", "UpBlock2D", "UpBlock2D")}, "unet"),
    "class embedding": ({"num_class_embeds": 10}, "unet"),
    "downsample_type resnet": ({"downsample_type": "resnet"}, "diffusers"),
    "upsample_type resnet": ({"upsample_type": "resnet"}, "diffusers"),
    "resnet_time_scale_shift scale_shift": ({"resnet_time_scale_shift": "scale_shift"},
                                            "diffusers"),
    "time_embedding_type fourier": ({"time_embedding_type": "fourier"}, "diffusers"),
    "time_embedding_type learned": ({"time_embedding_type": "learned",
                                     "num_train_timesteps": 1000}, "diffusers"),
    "act_fn gelu": ({"act_fn": "gelu"}, "diffusers"),
    "act_fn mish": ({"act_fn": "mish"}, "diffusers"),
    "attention_head_dim none": ({"attention_head_dim": None}, "unet"),
    "add_attention false": ({"add_attention": False}, "diffusers"),
    "no mid block": ({"mid_block_type": None}, "diffusers"),
    "mid_block_scale_factor 2": ({"mid_block_scale_factor": 2.0}, "diffusers"),
    "time_embedding_dim 48": ({"time_embedding_dim": 48}, "diffusers"),
    "attn_norm_num_groups 4": ({"attn_norm_num_groups": 4}, "diffusers"),
    "ResnetDownsampleBlock2D": ({"down_block_types": ("ResnetDownsampleBlock2D", "AttnDownBlock2D"),
                                 "up_block_types": ("AttnUpBlock2D", "ResnetUpsampleBlock2D")},
                                "diffusers"),
    "SkipDownBlock2D": ({"block_out_channels": (32, 32),  # skip blocks: 32-channel groups
                         "down_block_types": ("SkipDownBlock2D", "AttnSkipDownBlock2D"),
                         "up_block_types": ("AttnSkipUpBlock2D", "SkipUpBlock2D")}, "diffusers"),
    "class_embed_type timestep": ({"class_embed_type": "timestep", "num_class_embeds": 10},
                                  "diffusers"),
    "class embedding, scale_shift": ({"num_class_embeds": 4,
                                      "resnet_time_scale_shift": "scale_shift"}, "diffusers"),
    "center_input_sample": ({"center_input_sample": True}, "diffusers"),
    "non-square 16×8": ({"sample_size": (16, 8)}, "diffusers"),
    "all attention": ({"down_block_types": ("AttnDownBlock2D", "AttnDownBlock2D"),
                       "up_block_types": ("AttnUpBlock2D", "AttnUpBlock2D")}, "unet"),
    "no attention": ({"down_block_types": ("DownBlock2D", "DownBlock2D"),
                      "up_block_types": ("UpBlock2D", "UpBlock2D")}, "unet"),
}  # fmt: skip


def save_pipeline(config: dict, folder, seed: int = 0, scheduler: dict | None = None):
    """A DDPMPipeline of a random UNet2DModel, written by diffusers itself."""
    torch.manual_seed(seed)
    unet = diffusers.UNet2DModel(**config).eval()
    with torch.no_grad():  # fresh layers start at zero output; give every weight a value
        for parameter in unet.parameters():
            parameter.add_(0.02 * torch.randn_like(parameter))
    variance = "learned_range" if config.get("out_channels") == 2 * config.get("in_channels", 3) \
        else "fixed_small"  # fmt: skip
    options = {"num_train_timesteps": 100, "variance_type": variance, **(scheduler or {})}
    schedule = diffusers.DDPMScheduler(**options)
    diffusers.DDPMPipeline(unet=unet, scheduler=schedule).save_pretrained(
        folder, safe_serialization=True
    )
    return unet


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_every_unet2dmodel_configuration_loads_and_computes_what_diffusers_does(name, tmp_path):
    changes, kind = CONFIGS[name]
    config = {**BASE, **changes}
    unet = save_pipeline(config, tmp_path / "pipe")
    model = ddpmkit.load(tmp_path / "pipe", device="cpu")
    assert model.config.model.kind == kind, name
    channels, height, width = model.shape
    assert (channels, height, width) == (config["in_channels"], *_size(config["sample_size"]))
    generator = torch.Generator().manual_seed(1)
    x_t = torch.randn(3, channels, height, width, generator=generator)
    t = torch.tensor([3.0, 40.0, 99.0])
    labels = None
    if config.get("num_class_embeds") or config.get("class_embed_type") == "timestep":
        labels = torch.tensor([0, 1, 3])
    steps = t.long() if config.get("time_embedding_type") == "learned" else t  # a step table
    with torch.no_grad():
        expected = unet(x_t, steps, class_labels=labels).sample
        ours = model.network(x_t, t, labels) if labels is not None else model.network(x_t, t)
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-5)
    if config.get("time_embedding_type") == "fourier":
        return  # log(t) at t = 0: a σ-input network of score SDEs, NaN under diffusers' DDPM too
    if labels is None or labels.dtype == torch.long:  # a sampler runs on the loaded model
        label = 1 if config.get("num_class_embeds") else None
        drawn = model.sample(2, steps=2, sampler="ddim", label=label, progress=False)
        assert drawn.shape == (2, channels, height, width) and torch.isfinite(drawn).all()


def _size(sample_size) -> tuple[int, int]:
    return (sample_size, sample_size) if isinstance(sample_size, int) else tuple(sample_size)


@pytest.mark.parametrize("embedding", ["identity", "timestep"])
def test_class_inputs_that_are_not_integer_labels_are_refused_by_name(embedding, tmp_path):
    """ddpmkit conditions on labels 0 … K-1: a vector class input (identity) or a
    timestep-embedded class without ``num_class_embeds`` has no K to draw labels from."""
    save_pipeline({**BASE, "class_embed_type": embedding}, tmp_path / "pipe")
    with pytest.raises(ValueError, match=f"class_embed_type {embedding!r}"):
        ddpmkit.load(tmp_path / "pipe", device="cpu")


def test_enough_distinct_configurations_are_compared():
    distinct = {json.dumps({**BASE, **changes}, sort_keys=True) for changes, _ in CONFIGS.values()}
    assert len(distinct) == len(CONFIGS) >= 30


def test_a_diffusers_default_pipeline_samples_from_the_cli_and_python(tmp_path, capsys):
    """``DDPMPipeline(UNet2DModel(...), DDPMScheduler()).save_pretrained`` with no edits."""
    from ddpmkit.cli import main

    save_pipeline({**BASE}, tmp_path / "pipe", scheduler={"num_train_timesteps": 1000})
    scheduler = json.loads((tmp_path / "pipe/scheduler/scheduler_config.json").read_text())
    defaults = dict(diffusers.DDPMScheduler().config)
    assert {k: v for k, v in scheduler.items() if not k.startswith("_")} == {
        k: (list(v) if isinstance(v, tuple) else v)
        for k, v in defaults.items()
        if not k.startswith("_")
    }  # DDPMScheduler() as it comes
    png = tmp_path / "grid.png"
    assert main(["sample", str(tmp_path / "pipe"), "--num_samples", "2", "--steps", "3",
                 "--out", str(png), "--quiet"]) == 0  # fmt: skip
    assert png.is_file() and "DDPMScheduler" in capsys.readouterr().out
    drawn = ddpmkit.load(tmp_path / "pipe").sample(2, steps=3, progress=False)
    assert drawn.shape == (2, 3, 16, 16)


@pytest.mark.parametrize(
    "scheduler", ["DDIMScheduler", "PNDMScheduler", "DPMSolverMultistepScheduler",
                  "EulerDiscreteScheduler"],
)  # fmt: skip
def test_other_scheduler_classes_are_read_for_their_schedule(scheduler, tmp_path, capsys):
    from ddpmkit.cli import main

    save_pipeline({**BASE}, tmp_path / "pipe")
    folder = tmp_path / "pipe" / "scheduler"
    other = getattr(diffusers, scheduler).from_pretrained(folder)  # the same schedule
    (folder / "scheduler_config.json").unlink()
    other.save_pretrained(folder)
    model = ddpmkit.load(tmp_path / "pipe", device="cpu")
    reference = other.alphas_cumprod.double()  # diffusers' ᾱ_t of the same config
    torch.testing.assert_close(model.schedule.alpha_bar, reference, rtol=1e-5, atol=0)
    assert main(["sample", str(tmp_path / "pipe"), "--num_samples", "1", "--steps", "2",
                 "--out", str(tmp_path / "g.png"), "--quiet"]) == 0  # fmt: skip
    assert scheduler in capsys.readouterr().out


def test_a_class_conditional_export_keeps_its_null_class(tmp_path):
    """A ddpmkit model trained with label dropout exports its class embedding and reads back
    with the same null class, so classifier-free guidance works on the exported folder."""
    from ddpmkit.storage.diffusers_folders import LABEL_DROPOUT_KEY

    tiny = {"model": {"class_conditional": True, "label_dropout": 0.2,
                      "unet": {"base_channels": 16, "channel_mults": (1, 2),
                               "layers_per_block": 1, "norm_groups": 8}},
            "diffusion": {"num_steps": 40}, "train": {"steps": 2, "batch_size": 8,
                                                        "precision": "fp32"}}  # fmt: skip
    model = ddpmkit.train("digits", out=tmp_path / "run", preset="digits", progress=False, **tiny)
    folder = model.export_diffusers(tmp_path / "pipe")
    unet_json = json.loads((folder / "unet" / "config.json").read_text())
    assert unet_json["num_class_embeds"] == 11 and unet_json[LABEL_DROPOUT_KEY] == 0.2
    assert diffusers.UNet2DModel.from_pretrained(folder / "unet").config.num_class_embeds == 11
    back = ddpmkit.load(folder, device="cpu")
    options = {"steps": 3, "seed": 0, "guidance": 2.0, "label": 7, "precision": "fp32",
               "progress": False}  # fmt: skip
    torch.testing.assert_close(back.sample(2, **options), model.sample(2, **options), atol=1e-4,
                               rtol=0)  # fmt: skip


def test_a_quick_start_run_that_cannot_export_says_so_once_when_it_starts(tmp_path, capsys):
    """The quick start's 2×2-patched U-Net has no UNet2DModel form: training warns at its start
    (once, not again on resume) and names the flag that avoids it; export then refuses."""
    from ddpmkit.cli import main

    flags = ["--data.image_size", "16", "--train.minutes", "0.05", "--train.steps", "2",
             "--train.precision", "fp32", "--sample.num_samples", "2", "--sample.steps", "2",
             "--quiet"]  # fmt: skip
    assert main(["train", "--out", str(tmp_path / "run"), *flags]) == 0
    err = capsys.readouterr().err
    assert err.count("will not export to diffusers") == 1 and "--model.unet.* flags" in err
    assert ddpmkit.load(tmp_path / "run").config.model.unet.patch_size == 2
    assert main(["train", "--out", str(tmp_path / "run"), "--resume", "--train.steps", "3",
                 "--quiet"]) == 0  # fmt: skip
    assert "will not export" not in capsys.readouterr().err
    assert main(["export-diffusers", str(tmp_path / "run"), str(tmp_path / "pipe")]) == 2
    assert "patch_size" in capsys.readouterr().err and not (tmp_path / "pipe").exists()


LSUN_256 = {  # config.json of google/ddpm-celebahq-256, -church-256 and -bedroom-256 (the same)
    "act_fn": "silu", "attention_head_dim": None, "block_out_channels": [128, 128, 256, 256, 512, 512],
    "center_input_sample": False,
    "down_block_types": ["DownBlock2D", "DownBlock2D", "DownBlock2D", "DownBlock2D",
                         "AttnDownBlock2D", "DownBlock2D"],
    "downsample_padding": 0, "flip_sin_to_cos": False, "freq_shift": 1, "in_channels": 3,
    "layers_per_block": 2, "mid_block_scale_factor": 1, "norm_eps": 1e-06, "norm_num_groups": 32,
    "out_channels": 3, "sample_size": 256, "time_embedding_type": "positional",
    "up_block_types": ["UpBlock2D", "AttnUpBlock2D", "UpBlock2D", "UpBlock2D", "UpBlock2D",
                       "UpBlock2D"],
}  # fmt: skip
TRAIN_UNCONDITIONAL = {  # examples/unconditional_image_generation/train_unconditional.py
    "sample_size": 64, "in_channels": 3, "out_channels": 3, "layers_per_block": 2,
    "block_out_channels": (128, 128, 256, 256, 512, 512),
    "down_block_types": ("DownBlock2D", "DownBlock2D", "DownBlock2D", "DownBlock2D",
                         "AttnDownBlock2D", "DownBlock2D"),
    "up_block_types": ("UpBlock2D", "AttnUpBlock2D", "UpBlock2D", "UpBlock2D", "UpBlock2D",
                       "UpBlock2D"),
}  # fmt: skip
"""Its U-Net, diffusers' defaults for the rest (flip_sin_to_cos, freq_shift 0, padding 1)."""


def _published(name: str) -> dict:
    from test_networks import DDPM_CIFAR10_CONFIG

    return {
        "google/ddpm-cifar10-32": DDPM_CIFAR10_CONFIG,
        "google/ddpm-celebahq-256": LSUN_256,
        "google/ddpm-church-256": LSUN_256,
        "google/ddpm-bedroom-256": LSUN_256,
        "train_unconditional.py": TRAIN_UNCONDITIONAL,
    }[name]


def _compare_published(name: str, folder) -> None:
    config = {k: v for k, v in _published(name).items() if not k.startswith("_")}
    unet = save_pipeline(config, folder, scheduler={"num_train_timesteps": 1000})
    model = ddpmkit.load(folder, device="cpu")
    assert model.config.model.kind == "unet"  # ddpmkit's own U-Net, no diffusers needed
    size = config["sample_size"]
    x_t = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([500.0])
    with torch.no_grad():
        torch.testing.assert_close(model.network(x_t, t), unet(x_t, t).sample, rtol=0, atol=1e-5)


def test_the_published_cifar10_configuration(tmp_path):
    _compare_published("google/ddpm-cifar10-32", tmp_path / "pipe")


@pytest.mark.parametrize(  # about 9 s each at 256×256 on 2 CPU cores
    "name", ["google/ddpm-celebahq-256", "google/ddpm-church-256", "google/ddpm-bedroom-256",
             "train_unconditional.py"],
)  # fmt: skip
def test_the_published_large_configurations(name, tmp_path):
    _compare_published(name, tmp_path / "pipe")


def test_a_latent_model_exports_parts_diffusers_loads(tmp_path):
    """AutoencoderKL (vae/) + UNet2DModel (unet/) + scheduler: each loads with its diffusers class
    and computes what ddpmkit's model does."""
    network = {"base_channels": 8, "norm_groups": 4, "channel_mults": (1, 2), "latent_channels": 2}
    vae_report = ddpmkit.train_autoencoder("digits", out=tmp_path / "ae", progress=False,
                                           autoencoder=network, train={"steps": 2})  # fmt: skip
    tiny = {"model": {"autoencoder": vae_report.folder,
                      "unet": {"base_channels": 16, "channel_mults": (1, 2), "layers_per_block": 1,
                               "norm_groups": 8, "attention_resolutions": (), "sample_size": 4}},
            "diffusion": {"num_steps": 40}, "train": {"steps": 2, "batch_size": 8,
                                                        "precision": "fp32"},
            "sample": {"num_samples": 2, "steps": 2}}  # fmt: skip
    model = ddpmkit.train("digits", out=tmp_path / "run", preset="digits", progress=False, **tiny)
    folder = model.export_diffusers(tmp_path / "export")
    assert not (folder / "model_index.json").exists() and "AutoencoderKL" in (
        folder / "README.md").read_text()  # fmt: skip
    vae = diffusers.AutoencoderKL.from_pretrained(folder / "vae").eval()
    unet = diffusers.UNet2DModel.from_pretrained(folder / "unet").eval()
    z = torch.randn(2, *model.shape, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([5.0, 30.0])
    with torch.no_grad():
        torch.testing.assert_close(unet(z, t).sample, model.network(z, t), rtol=0, atol=1e-5)
        images = vae.decode(z / vae.config.scaling_factor).sample.clamp(-1, 1)
    torch.testing.assert_close(images, model.decode(z), rtol=0, atol=1e-4)


def test_a_diffusers_backed_model_imports_and_exports_unchanged(tmp_path):
    """A layout only diffusers runs: import-diffusers keeps it (model.kind diffusers), the
    checkpoint computes the same, and export-diffusers writes the same config and weights."""
    from safetensors.torch import load_file

    from ddpmkit.cli import main

    changes, _ = CONFIGS["SkipDownBlock2D"]
    unet = save_pipeline({**BASE, **changes, "resnet_time_scale_shift": "scale_shift"},
                         tmp_path / "pipe")  # fmt: skip
    assert main(["import-diffusers", str(tmp_path / "pipe"), str(tmp_path / "ckpt")]) == 0
    model = ddpmkit.load(tmp_path / "ckpt", device="cpu")
    assert model.config.model.kind == "diffusers"
    x_t = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([10.0, 60.0])
    with torch.no_grad():
        torch.testing.assert_close(model.network(x_t, t), unet(x_t, t).sample, rtol=0, atol=1e-5)
    assert main(["export-diffusers", str(tmp_path / "ckpt"), str(tmp_path / "out")]) == 0
    weights = "unet/diffusion_pytorch_model.safetensors"
    original, back = load_file(tmp_path / "pipe" / weights), load_file(tmp_path / "out" / weights)
    assert original.keys() == back.keys()
    assert all(torch.equal(original[k], back[k]) for k in original)
    config = diffusers.UNet2DModel.from_pretrained(tmp_path / "out" / "unet").config
    assert config.resnet_time_scale_shift == "scale_shift"
