"""Outputs are never left half-written under their final names (issue 29): files go through a
temporary name and a rename, folders are filled as NAME.partial and renamed when complete, so a
kill leaves the old state or the new one and the command can be run again."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from ddpmkit.cli import main
from ddpmkit.files import (
    partial_folder,
    partial_path,
    staged,
    write_atomically,
    write_text_atomically,
)


def test_a_file_appears_whole_or_not_at_all(tmp_path):
    path = tmp_path / "out" / "report.json"
    write_text_atomically(path, "one\n")
    assert path.read_text() == "one\n"
    with pytest.raises(FileExistsError, match=r"report\.json already exists"):
        write_text_atomically(path, "two\n")
    write_text_atomically(path, "two\n", overwrite=True)
    assert path.read_text() == "two\n"

    def half_then_fail(where):
        where.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomically(tmp_path / "out" / "new.json", half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        write_atomically(path, half_then_fail, overwrite=True)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["report.json"]  # no temp
    assert path.read_text() == "two\n"  # the old state


def test_writers_get_a_temporary_name_with_the_final_suffix(tmp_path):
    """NumPy and Pillow choose their format by the suffix (np.savez adds .npz to other names)."""
    seen = []
    write_atomically(tmp_path / "a.npz", lambda where: (seen.append(where.name),
                     np.savez(where, x=np.zeros(2))))  # fmt: skip
    assert seen[0].startswith(".a.npz.") and seen[0].endswith(".partial.npz")
    assert np.load(tmp_path / "a.npz")["x"].shape == (2,)


def test_a_folder_is_renamed_into_place_once_complete(tmp_path):
    folder = tmp_path / "pngs"
    stale = partial_path(folder)
    stale.mkdir()
    (stale / "000000.png").write_bytes(b"a killed attempt's file")
    with pytest.raises(RuntimeError), partial_folder(folder) as partial:
        assert list(partial.iterdir()) == []  # the killed attempt's leftovers are gone
        (partial / "a").write_text("1")
        raise RuntimeError("interrupted")
    assert not folder.exists() and (stale / "a").exists()
    with partial_folder(folder) as partial:
        (partial / "b").write_text("2")
    assert [p.name for p in folder.iterdir()] == ["b"] and not stale.exists()
    with pytest.raises(FileExistsError, match="pngs already exists"), partial_folder(folder):
        pass


TINY = [
    "--model.unet.base_channels", "16", "--model.unet.channel_mults", "1,2",
    "--model.unet.layers_per_block", "1", "--model.unet.norm_groups", "8",
    "--diffusion.num_steps", "60", "--train.steps", "2", "--train.batch_size", "8",
    "--train.checkpoint_every", "2", "--sample.num_samples", "4", "--train.precision", "fp32",
]  # fmt: skip


def test_a_sigkilled_png_folder_leaves_nothing_final_and_the_rerun_works(tmp_path):
    """`ddpmkit sample --format png-folder` is SIGKILLed while it writes its PNGs: no folder,
    grid or .npz exists under its final name, and the same command then succeeds."""
    run = tmp_path / "run"
    assert main(["train", "--preset", "digits", "--out", str(run), "--quiet", *TINY]) == 0
    out = tmp_path / "samples.png"
    command = [sys.executable, "-m", "ddpmkit", "sample", str(run), "--out", str(out),
               "--format", "png-folder", "--num_samples", "4000", "--batch_size", "4000",
               "--sampler", "ddim", "--steps", "1", "--quiet"]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    partial, folder = partial_path(tmp_path / "samples"), tmp_path / "samples"
    deadline = time.monotonic() + 120
    while process.poll() is None and not (partial.is_dir() and any(partial.iterdir())):
        assert time.monotonic() < deadline, "sampling never started writing"
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the command ended before it was killed"
    assert not folder.exists() and not out.exists() and not out.with_suffix(".npz").exists()
    assert main(command[3:]) == 0
    assert len(list(folder.iterdir())) == 4000 and not partial.exists()
    assert out.exists() and out.with_suffix(".npz").exists()


def test_staged_outputs_appear_together_or_not_at_all(tmp_path):
    """A command's files (the grid, the .npz) are all written before any is renamed: a failure
    while writing the second leaves neither, and a rerun is not blocked by the first."""
    grid, arrays = tmp_path / "s.png", tmp_path / "s.npz"
    with pytest.raises(OSError, match="disk full"), staged([grid, arrays]) as names:
        names[grid].write_bytes(b"png")
        raise OSError("disk full")
    assert list(tmp_path.iterdir()) == []
    with staged([grid, arrays]) as names:
        names[grid].write_bytes(b"png")
        names[arrays].write_bytes(b"npz")
    assert grid.read_bytes() == b"png" and arrays.read_bytes() == b"npz"
    with pytest.raises(FileExistsError, match=r"s\.png already exists"), staged([grid]):
        pass


def test_sample_streams_its_files_batch_by_batch(tmp_path, monkeypatch):
    """`ddpmkit sample` in one process writes each batch as it comes: its .npz and uint8 .npz
    hold what `Model.draw` returns, and a count whose samples do not fit in memory at once is
    drawn anyway, since only a batch is held (`Model.draw` refuses it)."""
    from ddpmkit.api.model import load
    from ddpmkit.data import to_uint8_images

    run = tmp_path / "run"
    assert main(["train", "--preset", "digits", "--out", str(run), "--quiet", *TINY]) == 0
    out = tmp_path / "s.png"
    flags = ["--num_samples", "300", "--batch_size", "64", "--sampler", "ddim", "--steps", "2"]
    assert main(["sample", str(run), "--quiet", "--out", str(out), "--format", "npz-uint8",
                 *flags]) == 0  # fmt: skip
    whole = load(run).draw(300, batch_size=64, sampler="ddim", steps=2, progress=False).samples
    assert np.array_equal(np.load(out.with_suffix(".npz"))["samples"], whole.numpy())
    uint8 = np.load(tmp_path / "s-uint8.npz")["arr_0"]
    assert np.array_equal(uint8, to_uint8_images(whole))
    # a batch fits (~557 kB estimated), it and the 300 samples kept and joined (8 · 300 · 64 bytes
    # more) do not
    monkeypatch.setattr("ddpmkit.memory.available_bytes", lambda device: 600_000)
    with pytest.raises(ValueError, match="sampling 300 samples"):
        load(run).draw(300, batch_size=64, sampler="ddim", steps=2, progress=False)
    assert main(["sample", str(run), "--quiet", "--out", str(tmp_path / "t.png"), *flags]) == 0
    streamed = np.load(tmp_path / "t.npz")["samples"]
    assert np.array_equal(streamed, whole.numpy())
