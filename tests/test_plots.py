"""``ddpmkit plot``: the pictures of a tiny digits run and a tiny toy2d run, and its errors."""

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from ddpmkit.cli import main
from ddpmkit.plots import evenly_spaced, read_log, save_strip

TINY_DIGITS = [
    "--preset", "digits", "--quiet", "--train.precision", "fp32",
    "--model.unet.base_channels", "16", "--model.unet.channel_mults", "1,2",
    "--model.unet.layers_per_block", "1", "--model.unet.norm_groups", "8",
    "--diffusion.num_steps", "60", "--train.steps", "4", "--train.batch_size", "8",
    "--train.checkpoint_every", "2", "--train.sample_every", "2", "--train.log_every", "1",
    "--train.eval_every", "2", "--train.eval_samples", "2",
    "--sample.num_samples", "5", "--sample.sampler", "ddim", "--sample.steps", "5",
]  # fmt: skip
TINY_TOY = [
    "--preset", "toy2d", "--quiet", "--train.precision", "fp32", "--train.steps", "4",
    "--train.batch_size", "64", "--diffusion.num_steps", "60", "--sample.num_samples", "16",
    "--train.checkpoint_every", "2", "--train.sample_every", "2", "--train.log_every", "1",
]  # fmt: skip


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """A 4-step digits run with held-out bits/dim in its log, and a 3-sample DDIM trajectory."""
    folder = tmp_path_factory.mktemp("digits")
    run, trajectory = folder / "run", folder / "trajectory.npz"
    assert main(["train", "--out", str(run), *TINY_DIGITS]) == 0
    sample = ["sample", str(run), "--trajectory", str(trajectory), "--num_samples", "3"]
    assert main([*sample, "--quiet"]) == 0
    return run, trajectory


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    """A 4-step toy2d run and a trajectory of 16 points."""
    folder = tmp_path_factory.mktemp("toy")
    run, trajectory = folder / "run", folder / "trajectory.npz"
    assert main(["train", "--out", str(run), *TINY_TOY]) == 0
    assert main(["sample", str(run), "--trajectory", str(trajectory), "--quiet"]) == 0
    return run, trajectory


def _written(out: str) -> list[str]:
    return [
        line.removeprefix("ddpmkit: plot ")
        for line in out.splitlines()
        if line.startswith("ddpmkit: plot ")
    ]


def _opens(path, min_width=150, min_height=100) -> Image.Image:
    image = Image.open(path)
    image.load()
    assert image.width >= min_width and image.height >= min_height, (path, image.size)
    assert image.width <= 4000 and image.height <= 4000, (path, image.size)
    return image


def test_an_image_run_gets_every_picture(digits_run, tmp_path, capsys):
    run, trajectory = digits_run
    out = tmp_path / "pictures"
    assert main(["plot", str(run), "--trajectory", str(trajectory), "--out", str(out)]) == 0
    names = ["loss.png", "heldout_bpd.png", "samples_over_training.png", "forward_process.png"]
    names += ["trajectory.png", "trajectory.gif"]
    assert _written(capsys.readouterr().out) == [str(out / name) for name in names]
    for name in names[:-1]:
        assert _opens(out / name).format == "PNG"
    steps = np.load(trajectory)["samples"].shape[1]  # x_T and the 5 DDIM steps
    gif = _opens(out / "trajectory.gif", min_width=100, min_height=50)
    assert gif.format == "GIF" and gif.n_frames == steps == 6
    assert _opens(out / "forward_process.png").width > 8 * 60  # 9 titled columns: x_0 and 8 t


def test_a_2d_run_draws_point_clouds_and_refuses_to_overwrite(toy_run, capsys):
    run, trajectory = toy_run
    assert main(["plot", str(run), "--trajectory", str(trajectory)]) == 0
    out = capsys.readouterr().out
    names = ["loss.png", "samples_over_training.png", "forward_process.png"]
    names += ["trajectory.png", "trajectory.gif"]
    assert _written(out) == [str(run / "plots" / name) for name in names]
    assert "no held-out bits/dim" in out
    for name in names[:-1]:
        _opens(run / "plots" / name)
    steps = np.load(trajectory)["samples"].shape[1]  # ancestral: x_T and its 60 steps
    assert Image.open(run / "plots" / "trajectory.gif").n_frames == steps == 61

    before = {p: p.stat().st_mtime_ns for p in (run / "plots").iterdir()}
    assert main(["plot", str(run)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("ddpmkit plot: error: ") and error.count("\n") == 1
    assert str(run / "plots" / "loss.png") in error and "already exists" in error
    assert {p: p.stat().st_mtime_ns for p in (run / "plots").iterdir()} == before


def test_a_run_without_log_or_samples_gets_what_can_be_drawn(digits_run, tmp_path, capsys):
    run, _ = digits_run
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(run / "config.json", bare / "config.json")
    assert main(["plot", str(bare)]) == 0
    out = capsys.readouterr().out
    assert "no loss curve" in out and "no samples over training" in out
    assert _written(out) == [str(bare / "plots" / "forward_process.png")]

    config = json.loads((bare / "config.json").read_text())
    config["data"] |= {"source": "folder", "path": str(tmp_path / "gone"), "image_size": 8}
    (bare / "config.json").write_text(json.dumps(config))
    assert main(["plot", str(bare), "--out", str(tmp_path / "none")]) == 2
    captured = capsys.readouterr()
    assert "no forward process" in captured.out and "nothing to draw" in captured.err
    assert not (tmp_path / "none").exists()


def test_bad_input_is_one_line_naming_it(digits_run, tmp_path, capsys):
    run, _ = digits_run
    np.savez(tmp_path / "flat.npz", samples=np.zeros((3, 4), np.float32))
    (tmp_path / "not_a_run").mkdir()
    cases = [
        (["plot", str(tmp_path / "nowhere")], tmp_path / "nowhere"),
        (["plot", str(tmp_path / "not_a_run")], tmp_path / "not_a_run"),
        (["plot", str(run), "--trajectory", str(tmp_path / "t.npz")], tmp_path / "t.npz"),
        (["plot", str(run), "--trajectory", str(tmp_path / "flat.npz")], tmp_path / "flat.npz"),
        (["plot", str(run), "--trajectory", str(run / "log.csv")], run / "log.csv"),
    ]
    for args, named in cases:
        assert main([*args, "--out", str(tmp_path / "out")]) == 2, args
        error = capsys.readouterr().err
        assert error.startswith("ddpmkit plot: error: ") and error.count("\n") == 1, error
        assert str(named) in error
    assert not (tmp_path / "out").exists()


def test_log_cells_may_be_empty(tmp_path):
    log = tmp_path / "log.csv"
    log.write_text("step,loss,heldout_bpd\n1,0.5,\n2,0.25,3.5\n")
    table = read_log(log)
    assert table["loss"].tolist() == [0.5, 0.25]
    assert np.isnan(table["heldout_bpd"][0]) and table["heldout_bpd"][1] == 3.5
    log.write_text("step,loss\n1,lots\n")
    with pytest.raises(ValueError, match=r"log\.csv"):
        read_log(log)


@pytest.mark.parametrize(
    ("count", "most", "expected"),
    [(1, 8, [0]), (3, 8, [0, 1, 2]), (60, 8, [0, 8, 17, 25, 34, 42, 51, 59]), (10, 2, [0, 9])],
)
def test_evenly_spaced_keeps_the_first_and_last(count, most, expected):
    assert evenly_spaced(count, most) == expected


@pytest.mark.parametrize("shape", [(5, 3, 8, 6), (40, 2)], ids=["rgb", "points"])
def test_a_strip_of_one_column(shape, tmp_path):
    samples = np.random.default_rng(0).uniform(-1, 1, shape).astype(np.float32)
    path = save_strip([samples], ["step 7"], tmp_path / "strip.png", title="one")
    assert _opens(path, min_width=100).mode in ("RGB", "RGBA")
    with pytest.raises(FileExistsError, match=r"strip\.png"):
        save_strip([samples], ["step 7"], path, title="again")


def test_the_bound_terms_plot_is_a_matplotlib_figure_with_axes(tmp_path):
    """`eval --nll vlb`'s L_t plot: matplotlib (ticks, labels), log scale; no overwrite."""
    from PIL import Image

    from ddpmkit.plots import save_terms_plot

    path = save_terms_plot([3.0, 0.5, 0.1, 0.02, 1e-5], tmp_path / "terms.png")
    with Image.open(path) as picture:
        assert "Matplotlib" in picture.info.get("Software", "")
        assert picture.size == (750, 450)
    with pytest.raises(FileExistsError):
        save_terms_plot([1.0], path)
