"""Image restoration: reading images and masks, PSNR/SSIM, the baselines, ``restore`` and the CLI."""

import math

import numpy as np
import pytest
import torch
from PIL import Image

import ddpmkit.cli as cli
from ddpmkit import Mask
from ddpmkit.data.digits import digits_arrays
from ddpmkit.evaluation.restoration_metrics import psnr, ssim
from ddpmkit.pipeline.restoration import (
    bicubic_upsample,
    mean_fill,
    read_image,
    read_mask,
    restore,
    save_panel,
)
from ddpmkit.storage.model import load_model

TINY = [
    "--model.unet.base_channels", "16", "--model.unet.channel_mults", "1,2",
    "--model.unet.layers_per_block", "1", "--model.unet.norm_groups", "8",
    "--diffusion.num_steps", "60", "--train.steps", "4", "--train.batch_size", "8",
    "--train.checkpoint_every", "2", "--sample.num_samples", "5", "--train.precision", "fp32",
]  # fmt: skip
SHAPE = (1, 8, 8)
TILE = 8 * 8 + 1  # a panel tile: 8 pixels magnified 8 times, then 1 pixel of padding
TITLE_BAND = 16  # the band of column titles above a panel


def write_png(path, pixels, mode="L"):
    Image.fromarray(np.asarray(pixels, dtype=np.uint8), mode).save(path)
    return path


def centre_hole() -> torch.Tensor:
    mask = torch.ones(SHAPE)
    mask[:, 2:6, 2:6] = 0.0
    return mask


@pytest.fixture(scope="module")
def digit() -> torch.Tensor:
    return digits_arrays("heldout")[0][0]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A digits model trained for 4 steps (T = 60)."""
    folder = tmp_path_factory.mktemp("restoration") / "run"
    assert cli.main(["train", "--preset", "digits", "--out", str(folder), "--quiet", *TINY]) == 0
    return folder


def test_read_image_converts_the_mode_and_refuses_other_sizes(tmp_path):
    rgb = np.zeros((8, 8, 3), dtype=np.uint8)
    rgb[2:6, 3] = (255, 255, 255)
    x = read_image(write_png(tmp_path / "rgb.png", rgb, "RGB"), SHAPE)
    assert x.shape == SHAPE and x.max() == 1.0 and x.min() == -1.0 and (x == 1.0).sum() == 4
    assert read_image(write_png(tmp_path / "grey.png", rgb[..., 0]), (3, 8, 8)).shape == (3, 8, 8)
    with pytest.raises(ValueError, match=r"big\.png: is 9×8 pixels but the model takes 8×8"):
        read_image(write_png(tmp_path / "big.png", np.zeros((8, 9))), SHAPE)
    with pytest.raises(FileNotFoundError, match=r"missing\.png"):
        read_image(tmp_path / "missing.png", SHAPE)
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(ValueError, match=r"cannot read image .*text\.png"):
        read_image(tmp_path / "text.png", SHAPE)


def test_read_mask_marks_white_known_and_names_the_file_on_errors(tmp_path):
    pixels = np.full((8, 8), 255)
    pixels[2:6, 2:6] = 0
    pixels[0, 0] = 128  # the threshold: still known
    path = write_png(tmp_path / "mask.png", pixels)
    assert torch.equal(read_mask(path, SHAPE), centre_hole())
    assert torch.equal(read_mask(path, SHAPE, invert=True), 1.0 - centre_hole())
    cases = {
        "white.png": (np.full((8, 8), 255), "every pixel is known"),
        "black.png": (np.zeros((8, 8)), "every pixel is to fill in"),
        "small.png": (np.zeros((4, 4)), "is 4×4 pixels"),
    }
    for name, (array, message) in cases.items():
        with pytest.raises(ValueError, match=rf"{name.replace('.', '[.]')}: {message}"):
            read_mask(write_png(tmp_path / name, array), SHAPE)
    colour = np.zeros((8, 8, 3))
    colour[..., 0] = 255
    with pytest.raises(ValueError, match=r"red\.png: has coloured pixels"):
        read_mask(write_png(tmp_path / "red.png", colour, "RGB"), SHAPE)


def test_psnr_and_ssim_numerics():
    x = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    assert torch.equal(ssim(x, x), torch.ones(3, dtype=torch.float64))
    assert torch.isinf(psnr(x, x)).all()
    # MSE 0.01 with data range 2: 10 log10(4 / 0.01).
    assert torch.allclose(
        psnr(x, x + 0.1), torch.full((3,), 10 * math.log10(400.0), dtype=torch.float64)
    )
    # Constant images: only the luminance term remains, (2ab + C1) / (a² + b² + C1).
    a, b, c1 = 0.5, -0.25, (0.01 * 2) ** 2
    constant = ssim(torch.full((1, 8, 8), a), torch.full((1, 8, 8), b))
    assert constant.item() == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1))
    noise = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    scores = [ssim(x, x + level * noise) for level in (0.05, 0.2, 0.5)]
    assert (scores[0] > scores[1]).all() and (scores[1] > scores[2]).all()
    assert torch.allclose(ssim(x, x + noise), ssim(x + noise, x))
    with pytest.raises(ValueError, match="different shapes"):
        psnr(x, x[:2])


def test_baselines():
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    filled = mean_fill(x, centre_hole())
    known = centre_hole().bool().expand_as(x)
    assert torch.equal(filled[known], x[known])
    means = x[known].reshape(2, 3, -1).mean(dim=2)
    assert torch.allclose(filled[:, :, 3, 4], means)
    high = bicubic_upsample(torch.full((1, 1, 4, 4), 0.3), 2)
    assert high.shape == (1, 1, 8, 8) and torch.allclose(high, torch.full_like(high, 0.3))
    assert bicubic_upsample(x, 2).abs().max() <= 1.0


def test_restore_keeps_the_known_pixels_and_does_not_depend_on_the_batch(run, digit):
    model = load_model(run, "cpu")
    mask = centre_hole()
    for method in ("replacement", "repaint"):
        out = restore(
            model, digit, "inpaint", method, mask=mask, num_samples=2, steps=20, resamplings=2,
            jump_length=5,
        )  # fmt: skip
        assert out.result.shape == (1, 2, *SHAPE)
        known = mask.bool().expand_as(out.result)
        assert torch.equal(out.result[known], digit.expand_as(out.result)[known])
        assert torch.equal(out.measurement, (digit * mask)[None])
    # The network in float64, so that batch-size-dependent CPU kernels differ by ~1e-16 (in float32
    # by ~1e-7, which DPS's gradient steps grow past 1e-5 on some CPUs). The sampler around it
    # stays in float32 (restore's dtype) and its row-wise steps agree exactly; measured: equal.
    # A float32 rounding flipped by the network's last bits would change the result by ≤ 1e-5
    # (weights perturbed by 1e-7 move it by 3e-6); coupled samples (the official code's norm over
    # the batch) by 0.75.
    double = load_model(run, "cpu")
    double.network.double()
    pair = torch.stack([digit, -digit])
    batch = restore(double, pair, "inpaint", "dps", mask=mask, steps=10, seed=4)
    alone = restore(double, -digit, "inpaint", "dps", mask=mask, steps=10, seed=5)
    assert torch.allclose(batch.result[1], alone.result[0], rtol=0, atol=1e-4)
    assert batch.result.abs().max() <= 1.0
    low = restore(model, digit, "super-resolution", steps=5, noise_std=0.1)
    assert low.measurement.shape == (1, 1, 4, 4)
    assert not torch.equal(low.measurement, torch.nn.functional.avg_pool2d(digit[None], 2))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"task": "super-resolution", "method": "repaint"}, "super-resolution takes the method"),
        ({"task": "deblur", "mask": centre_hole()}, "only used for inpainting"),
        ({"task": "super-resolution", "scale": 3}, "scale 3 must divide"),
        ({"task": "inpaint"}, "inpainting needs a mask"),
        ({"task": "denoise"}, "unknown task 'denoise'"),
    ],
)
def test_restore_errors(run, digit, options, message):
    with pytest.raises(ValueError, match=message):
        restore(load_model(run, "cpu"), digit, steps=2, **options)


def test_save_panel_refuses_to_overwrite(run, digit, tmp_path):
    out = restore(load_model(run, "cpu"), digit, "deblur", steps=2, num_samples=3)
    panel = Image.open(save_panel(out, tmp_path / "panel.png"))
    assert panel.size == (1 + 5 * TILE, TITLE_BAND + 1 + TILE)
    band = np.asarray(panel.convert("L"))[:TITLE_BAND]
    for column in range(5):  # a title (dark text on white) above every column
        assert band[:, 1 + column * TILE : (column + 1) * TILE].min() < 128
    with pytest.raises(FileExistsError, match=r"panel\.png"):
        save_panel(out, tmp_path / "panel.png")


def test_cli_commands_write_panels_and_refuse_to_overwrite(run, digit, tmp_path, capsys):
    pixels = ((digit[0] + 1) * 127.5).round().numpy()
    image = write_png(tmp_path / "digit.png", pixels)
    mask = write_png(tmp_path / "mask.png", centre_hole()[0].numpy() * 255)
    small = write_png(tmp_path / "small.png", pixels[::2, ::2])
    common = [str(run), "--quiet", "--steps", "10"]
    commands = {
        "inpaint": (["inpaint", "--image", str(image), "--mask", str(mask), "--method", "repaint",
                     "--resamplings", "2", "--jump_length", "3"], 1),
        "super-resolution": (["restore", "--task", "super-resolution", "--image", str(image),
                              "--num_samples", "2"], 2),
        "deblur": (["restore", "--task", "deblur", "--image", str(image), "--blur_sigma", "0.8"], 1),
        "edit": (["edit", "--image", str(image), "--strength", "0.3", "--sampler", "ddim"], 1),
    }  # fmt: skip
    for task, (argv, samples) in commands.items():
        assert cli.main([*argv, *common]) == 0
        written = run / "restorations" / f"{task}-digit-seed0.png"
        out = capsys.readouterr().out
        assert str(written) in out and "PSNR" in out
        assert Image.open(written).size == (1 + (2 + samples) * TILE, TITLE_BAND + 1 + TILE)
        assert cli.main([*argv, *common]) == 2
        assert f"{written} already exists" in capsys.readouterr().err
    low_res = ["restore", "--task", "super-resolution", "--low_res", str(small), *common]
    assert cli.main([*low_res, "--out", str(tmp_path / "low.png")]) == 0
    assert Image.open(tmp_path / "low.png").size == (1 + 3 * TILE, TITLE_BAND + 1 + TILE)
    assert cli.main([*low_res, "--image", str(image)]) == 2
    assert "exactly one of --image and --low_res" in capsys.readouterr().err
    assert cli.main(["inpaint", "--image", str(small), "--mask", str(mask), *common]) == 2
    assert "small.png: is 4×4 pixels" in capsys.readouterr().err


@pytest.mark.parametrize("method", ["ddrm", "pigdm"])
@pytest.mark.parametrize("task", ["super-resolution", "deblur", "inpaint"])
def test_ddrm_and_pigdm_restore_every_task(run, digit, task, method):
    """Noiseless DDRM keeps the measured part exactly (the known pixels of an inpainting; a
    super-resolution's block means hold before the result is clamped to [-1, 1]); ΠGDM only
    pulls towards it."""
    model = load_model(run)
    mask = centre_hole() if task == "inpaint" else None
    out = restore(model, digit, task, method, mask=mask, steps=20, num_samples=2)
    assert out.result.shape == (1, 2, *SHAPE) and out.result.isfinite().all()
    if method == "ddrm" and task == "inpaint":
        known = Mask(mask)
        assert (known(out.result[0]) - known(out.input)).abs().max() < 1e-5


def test_ssim_is_the_papers_11_by_11_gaussian_window():
    """Against an independent computation: scipy's Gaussian filter (σ = 1.5, truncated at 3.5σ:
    11 taps) of the five moments, borders of 5 cropped, as scikit-image's
    ``structural_similarity(gaussian_weights=True, use_sample_covariance=False)`` computes it."""
    from scipy.ndimage import gaussian_filter

    generator = torch.Generator().manual_seed(2)
    x = torch.rand(1, 32, 32, generator=generator, dtype=torch.float64) * 2 - 1
    y = (x + 0.3 * torch.randn(1, 32, 32, generator=generator, dtype=torch.float64)).clamp(-1, 1)
    a, b = x[0].numpy(), y[0].numpy()

    def filtered(image):
        return gaussian_filter(image, sigma=1.5, truncate=3.5)[5:-5, 5:-5]

    mu_a, mu_b = filtered(a), filtered(b)
    var_a, var_b = filtered(a * a) - mu_a**2, filtered(b * b) - mu_b**2
    cov = filtered(a * b) - mu_a * mu_b
    c1, c2 = (0.01 * 2) ** 2, (0.03 * 2) ** 2
    index = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
        (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    )
    assert ssim(x, y).item() == pytest.approx(float(index.mean()), rel=1e-9)
