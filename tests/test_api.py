"""The Python API used the documented way: ``ddpmkit.train`` -> ``ddpmkit.load`` -> the model's
methods, each checked against what it must equal (the CLI's files, the seeds, the known pixels)."""

import dataclasses
import inspect
import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import ddpmkit
from ddpmkit.cli import main

TINY = {
    "model": {"unet": {"base_channels": 16, "channel_mults": (1, 2), "layers_per_block": 1,
                       "norm_groups": 8}},
    "diffusion": {"num_steps": 40},
    "train": {"steps": 4, "batch_size": 8, "checkpoint_every": 2, "precision": "fp32"},
    "sample": {"num_samples": 4, "steps": 5, "sampler": "ddim"},
}  # fmt: skip


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("api") / "run"
    model = ddpmkit.train("digits", out=out, preset="digits", progress=False, **TINY)
    return out, model


def test_train_returns_the_model_load_reads_back(run):
    out, trained = run
    assert isinstance(trained, ddpmkit.Model)
    loaded = ddpmkit.load(out, device="cpu")
    assert loaded.shape == trained.shape == (1, 8, 8)
    assert loaded.config == trained.config and loaded.config.train.steps == 4
    for a, b in zip(
        trained.network.state_dict().values(), loaded.network.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b)
    raw = ddpmkit.load(out, device="cpu", weights="model")
    assert any(
        not torch.equal(a, b)
        for a, b in zip(
            raw.network.state_dict().values(), loaded.network.state_dict().values(), strict=True
        )
    )  # four steps move the weights away from their EMA


def test_sample_forms_agree_and_seeds_are_per_sample(run):
    model = ddpmkit.load(run[0], device="cpu")
    tensor = model.sample(3, seed=5, precision="fp32", progress=False)
    assert tensor.shape == (3, 1, 8, 8) and tensor.min() >= -1.0 - 1e-6
    pixels = model.sample(3, seed=5, precision="fp32", output="numpy", progress=False)
    assert pixels.dtype == np.uint8 and pixels.shape == (3, 8, 8, 1)
    np.testing.assert_array_equal(pixels, ddpmkit.to_images(tensor, "numpy"))
    images = model.sample(3, seed=5, precision="fp32", output="pil", progress=False)
    assert [image.size for image in images] == [(8, 8)] * 3 and images[0].mode == "L"
    np.testing.assert_array_equal(np.asarray(images[2]), pixels[2, ..., 0])
    later = model.sample(2, seed=6, precision="fp32", progress=False)  # sample i: seed + i
    torch.testing.assert_close(later, tensor[1:], rtol=0, atol=1e-4)  # another batch's kernels


def test_sample_options_reach_the_sampler_and_unknown_ones_are_refused(run):
    model = ddpmkit.load(run[0], device="cpu")
    calls = []
    result = model.draw(2, sampler="ancestral", steps=3, progress=lambda d, t: calls.append(t))
    assert result.nfe == 3 and calls and calls[-1] == 3
    with pytest.raises(ValueError, match="stepz"):
        model.sample(2, stepz=3)
    with pytest.raises(ValueError, match="sampler"):
        model.sample(2, sampler="nonesuch")


def test_the_cli_draws_what_the_api_draws(run, tmp_path):
    out, _ = run
    png = tmp_path / "grid.png"
    argv = ["sample", str(out), "--num_samples", "3", "--seed", "2", "--out", str(png), "--quiet"]
    assert main(argv) == 0
    cli = np.load(tmp_path / "grid.npz")["samples"]
    api = ddpmkit.load(out, device="cpu").sample(3, seed=2, progress=False)
    np.testing.assert_allclose(cli, api.numpy(), atol=1e-6)


def test_inpaint_keeps_the_known_pixels_and_takes_files_and_pil(run, tmp_path):
    model = ddpmkit.load(run[0], device="cpu")
    image = torch.linspace(-1, 1, 64).reshape(1, 8, 8)
    mask = torch.ones(1, 8, 8)
    mask[:, 2:6, 2:6] = 0
    restored = model.inpaint(image, mask, num_samples=2, steps=4, progress=False)
    assert isinstance(restored, ddpmkit.Restoration)
    assert restored.result.shape == (1, 2, 1, 8, 8)
    known = mask.bool().expand(2, 1, 8, 8)
    torch.testing.assert_close(restored.result[0][known], image.expand(2, 1, 8, 8)[known])
    pil = ddpmkit.to_images(image[None], "pil")[0]
    pil.save(tmp_path / "digit.png")
    Image.fromarray((mask[0].numpy() * 255).astype(np.uint8)).save(tmp_path / "mask.png")
    from_files = model.inpaint(tmp_path / "digit.png", tmp_path / "mask.png", steps=4,
                               progress=False)  # fmt: skip
    from_pil = model.inpaint(pil, mask, steps=4, progress=False)
    torch.testing.assert_close(from_files.result, from_pil.result)
    inverted = model.inpaint(pil, 1 - mask, invert_mask=True, steps=4, progress=False)
    torch.testing.assert_close(inverted.result, from_pil.result)


def test_restore_and_edit(run):
    model = ddpmkit.load(run[0], device="cpu")
    image = torch.zeros(1, 8, 8)
    low = model.restore(image, "super-resolution", scale=2, steps=3, progress=False)
    assert low.measurement.shape == (1, 1, 4, 4) and low.result.shape == (1, 1, 1, 8, 8)
    unchanged = model.edit(image, strength=0.0, progress=False)
    torch.testing.assert_close(unchanged.result[0, 0], image)  # t_0 = 0: nothing to denoise
    with pytest.raises(ValueError, match="method"):
        model.inpaint(image, torch.ones(1, 8, 8), method="nonesuch")


def test_likelihood_bound_and_ode(run):
    model = ddpmkit.load(run[0], device="cpu")
    bound = model.likelihood(num_samples=4, batch_size=4, progress=False)
    assert isinstance(bound, ddpmkit.NLLReport)
    assert bound.method == "vlb" and bound.num_samples == 4 and bound.bits_per_dim > 0
    assert len(bound.terms_bpd) == 40
    assert bound.rate_bpd + bound.distortion_bpd == pytest.approx(bound.bits_per_dim, rel=1e-4)
    again = model.likelihood("digits", num_samples=4, batch_size=4, progress=False)
    assert again.per_sample == pytest.approx(bound.per_sample, rel=1e-6)  # the run's data by name
    data = torch.rand(3, 1, 8, 8) * 2 - 1
    ode = model.likelihood(data, method="ode", num_samples=3, batch_size=3, progress=False)
    assert ode.method == "ode" and ode.num_samples == 3 and np.isfinite(ode.bits_per_dim)
    with pytest.raises(ValueError, match="shape"):
        model.likelihood(torch.zeros(2, 3, 8, 8), progress=False)


def test_export_diffusers_loads_back_with_the_same_samples(run, tmp_path):
    model = ddpmkit.load(run[0], device="cpu")
    folder = model.export_diffusers(tmp_path / "pipe")
    assert json.loads((folder / "model_index.json").read_text())["_class_name"] == "DDPMPipeline"
    card = (folder / "README.md").read_text()  # the model card: config and the run's figures
    assert card.startswith("---\nlibrary_name: diffusers") and '"num_steps": 40' in card
    assert "- steps: 4 of 4" in card and "- last logged loss:" in card
    back = ddpmkit.load(folder, device="cpu")
    options = {"sampler": "ddim", "steps": 5, "seed": 0, "precision": "fp32", "progress": False}
    torch.testing.assert_close(back.sample(2, **options), model.sample(2, **options), atol=1e-4,
                               rtol=0)  # fmt: skip
    with pytest.raises(FileExistsError):
        model.export_diffusers(folder)


def test_train_resumes_and_takes_dotted_overrides(run, tmp_path):
    out, _ = run
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    resumed = ddpmkit.train(out=copy, resume=True, progress=False, **{"train.steps": 6})
    assert resumed.config.train.steps == 6 and resumed.checkpoint.name.endswith("0000006")
    with pytest.raises(ValueError, match="unknown option 'trian'"):
        ddpmkit.train(out=tmp_path / "x", progress=False, trian={"steps": 1})
    with pytest.raises(FileNotFoundError, match="nonesuch"):
        ddpmkit.train(tmp_path / "nonesuch", out=tmp_path / "y", progress=False)


def _undocumented_parameters(value) -> list[str]:
    """The parameters of a public callable that its docstring does not name (as whole words).

    A protocol is documented by its method; a config dataclass by its fields' ``help``."""
    if getattr(value, "_is_protocol", False):
        return []
    if dataclasses.is_dataclass(value) and all(
        f.metadata.get("help") for f in dataclasses.fields(value) if f.init
    ):
        return []
    doc = inspect.getdoc(value) or ""
    try:
        parameters = inspect.signature(value).parameters
    except (TypeError, ValueError):
        return []
    return [p for p in parameters if p not in ("self", "cls") and not re.search(rf"\b{p}\b", doc)]


def test_the_public_names_are_lazy_and_documented():
    code = "import sys, ddpmkit; assert 'torch' not in sys.modules; print(ddpmkit.__version__)"
    subprocess.run([sys.executable, "-c", code], check=True)
    problems = []
    for name in ddpmkit.__all__:
        value = getattr(ddpmkit, name)
        if not callable(value):
            continue
        missing = _undocumented_parameters(value)
        doc = inspect.getdoc(value) or ""
        if not doc or doc.startswith(f"{name}(") or missing:  # (a dataclass's generated one)
            problems.append(f"{name}: {missing or 'no docstring'}")
    assert not problems, "\n".join(problems)


PUBLIC_SAMPLERS = {
    "ancestral": ddpmkit.ancestral, "ddim": ddpmkit.ddim, "dpm++2m": ddpmkit.dpmpp_2m,
    "dpm++3m": ddpmkit.dpmpp_3m, "edm-heun": ddpmkit.edm_heun, "ode-euler": ddpmkit.ode_euler,
    "ode-heun": ddpmkit.ode_heun, "ode-rk45": ddpmkit.ode_rk45,
    "euler-maruyama": ddpmkit.euler_maruyama, "pc": ddpmkit.predictor_corrector,
    "langevin": ddpmkit.annealed_langevin,
}  # fmt: skip


def test_every_registered_sampler_is_public():
    assert {name: ddpmkit.SAMPLERS[name] for name in PUBLIC_SAMPLERS} == ddpmkit.SAMPLERS


@pytest.mark.parametrize("name", sorted(PUBLIC_SAMPLERS))
def test_every_public_sampler_called_directly_is_the_registry_path(name):
    """``ddpmkit.<sampler>(denoiser, sigmas, x_T, generator=…)`` on the grid
    ``ddpmkit.build_grid`` gives is what ``ddpmkit.sample(name, …)`` draws, bit for bit."""
    sampler = PUBLIC_SAMPLERS[name]
    mean = torch.tensor([0.5, -0.3], dtype=torch.float64)
    denoiser = ddpmkit.GaussianDenoiser(mean, torch.diag(torch.tensor([0.2, 0.05])).double())
    assert isinstance(denoiser, ddpmkit.Denoiser)
    schedule = ddpmkit.NoiseSchedule.cosine(100)
    x_T = torch.randn(16, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    sigmas = ddpmkit.build_grid(schedule, sampler.default_grid, 8)
    direct = sampler(denoiser, sigmas, x_T, generator=ddpmkit.PerSampleGenerator(range(16)))
    registry = ddpmkit.sample(name, denoiser, schedule, x_T, 8,
                              generator=ddpmkit.PerSampleGenerator(range(16)))  # fmt: skip
    assert isinstance(direct, ddpmkit.SampleResult) and direct.nfe == registry.nfe > 0
    torch.testing.assert_close(direct.samples, registry.samples, rtol=0, atol=0)


def test_a_run_that_names_no_model_starts_from_the_quick_recipe(tmp_path):
    from ddpmkit.api.training import run_config

    quick = run_config(tmp_path, {"data": {"source": "digits"}})
    assert quick.model.auto_size and quick.train.batch_size == 0
    recipe = ddpmkit.QUICK_START["diffusion"]
    assert (quick.diffusion.parameterization, quick.diffusion.schedule) == (
        recipe["parameterization"], recipe["schedule"])  # fmt: skip
    named = run_config(tmp_path, {"model": {"unet": {"base_channels": 16, "norm_groups": 8}}})
    assert not named.model.auto_size  # a model named: no sizing, no quick recipe
    preset = run_config(tmp_path, {}, preset="toy2d")
    assert preset == ddpmkit.RunConfig(**{
        key: getattr(preset, key) for key in ("data", "model", "diffusion", "train", "sample")
    }) and preset.model.kind == "mlp"  # fmt: skip


def test_every_public_name_is_used_by_a_test_through_ddpmkit():
    """The names of ``ddpmkit.__all__`` are imported from ``ddpmkit`` (or read as ``ddpmkit.X``)
    somewhere in the tests, so each is tested the way the reference documents it."""
    import ast
    from pathlib import Path

    imported, text = set(), ""
    for path in Path(__file__).parent.glob("*.py"):
        source = path.read_text()
        text += source
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ImportFrom) and node.module == "ddpmkit":
                imported |= {alias.name for alias in node.names}
    unused = [
        name for name in ddpmkit.__all__
        if name not in imported and not re.search(rf"\bddpmkit\.{re.escape(name)}\b", text)
    ]  # fmt: skip
    assert not unused, f"public names no test uses through ddpmkit: {unused}"


def test_train_classifier_then_guide_the_samples_with_it(run, tmp_path):
    out, _ = run
    report = ddpmkit.train_classifier(out, out=tmp_path / "clf", steps=3, base_channels=8,
                                      progress=False)  # fmt: skip
    assert isinstance(report, ddpmkit.ClassifierReport) and report.folder == tmp_path / "clf"
    assert sorted(report.accuracy) == [0, 10, 20] and all(
        0 <= a <= 1 for a in report.accuracy.values()
    )
    model = ddpmkit.load(out, device="cpu")
    guided = model.sample(
        2, classifier=report.folder, classifier_scale=2.0, label=3, progress=False
    )
    unguided = model.sample(2, progress=False)
    assert guided.shape == unguided.shape and not torch.equal(guided, unguided)
    with pytest.raises(FileExistsError):
        ddpmkit.train_classifier(out, out=report.folder, steps=1, progress=False)


def test_train_autoencoder_writes_a_folder_latent_training_reads(tmp_path):
    network = {"base_channels": 8, "norm_groups": 4, "channel_mults": (1, 2), "latent_channels": 2}
    report = ddpmkit.train_autoencoder("digits", out=tmp_path / "ae", progress=False,
                                       autoencoder=network, train={"steps": 3})  # fmt: skip
    assert isinstance(report, ddpmkit.AutoencoderReport)
    assert report.latent_shape == (2, 4, 4) and report.preview.is_file()
    assert (report.folder / "config.json").is_file() and np.isfinite(report.psnr)
    with pytest.raises(ValueError, match="unknown option 'autoencodr'"):
        ddpmkit.train_autoencoder(out=tmp_path / "x", autoencodr={}, progress=False)
