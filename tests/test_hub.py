"""Hugging Face Hub repo ids as model names, read from a Hub cache built on disk: no network.

The cache follows huggingface_hub's layout (``models--owner--name/refs/<branch>`` holding a
commit hash, ``snapshots/<hash>/<files>``); ``HF_HUB_OFFLINE`` is on and every socket connection
fails, so a test that reached for the network would fail rather than download.
"""

from __future__ import annotations

import ast
import socket
import sys
from pathlib import Path

import huggingface_hub
import pytest
import torch
from huggingface_hub import constants
from test_diffusers_folders import SCHEDULER, write_pipeline

import ddpmkit
from ddpmkit.cli import main
from ddpmkit.storage import hub
from ddpmkit.storage.hub import HubName, parse_hub_name, resolve_hub_name
from ddpmkit.storage.model import ModelSource

MAIN = "a" * 40
PINNED = "b" * 40


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """An empty Hub cache that huggingface_hub reads offline; sockets refuse to connect."""
    folder = tmp_path / "hub-cache"
    folder.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(folder))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # huggingface_hub reads both variables once, at its import: the values it uses are these
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(folder))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)

    def refuse(*_: object, **__: object) -> None:
        raise OSError("tests/test_hub.py: no network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    return folder


def cache_repo(
    cache: Path, repo_id: str, commit: str, refs: tuple[str, ...] = ("main",), **changes: int
) -> Path:
    """A tiny DDPMPipeline snapshot of ``repo_id`` at ``commit``, which ``refs`` point to;
    ``changes`` go into its scheduler config."""
    storage = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = write_pipeline(storage / "snapshots" / commit, scheduler=SCHEDULER | changes)
    for ref in refs:
        (storage / "refs" / ref).parent.mkdir(parents=True, exist_ok=True)
        (storage / "refs" / ref).write_text(commit)  # no newline, as huggingface_hub writes it
    return snapshot


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("google/ddpm-cifar10-32", HubName("google/ddpm-cifar10-32")),
        ("owner/name@v1.0", HubName("owner/name", "v1.0")),
        ("owner/name@refs/pr/1", HubName("owner/name", "refs/pr/1")),
        (f"owner/my_model.v2@{PINNED}", HubName("owner/my_model.v2", PINNED)),
        ("name", None),  # a bare name is always a path
        ("runs/c10/checkpoints", None),
        ("./owner/name", None),
        ("owner/name/", None),
        ("/owner/name", None),
        ("-owner/name", None),
        ("owner/name.", None),
        ("owner--x/name", None),
        ("owner/name.git", None),
        ("owner/name@", None),
    ],
)
def test_a_hub_name_is_owner_slash_name_with_an_optional_revision(text, expected):
    assert parse_hub_name(text) == expected


def test_a_repo_id_reads_its_cached_snapshot_offline(cache):
    snapshot = cache_repo(cache, "owner/name", MAIN)
    assert resolve_hub_name("owner/name") == snapshot
    assert ModelSource.find("owner/name") == ModelSource(snapshot, "diffusers")
    model = ddpmkit.load("owner/name", device="cpu")
    samples = model.sample(2, steps=3, progress=False)
    assert samples.shape == (2, 3, 8, 8) and torch.isfinite(samples).all()
    assert model.config.diffusion.num_steps == 100


def test_a_revision_pins_a_commit_or_a_branch(cache):
    main_snapshot = cache_repo(cache, "owner/name", MAIN)
    pinned = cache_repo(cache, "owner/name", PINNED, refs=("v2",), num_train_timesteps=50)
    assert ModelSource.find("owner/name").folder == main_snapshot
    assert ModelSource.find(f"owner/name@{PINNED}").folder == pinned
    assert ModelSource.find("owner/name@v2").folder == pinned
    assert ModelSource.find(Path("owner/name@v2")).folder == pinned  # as the CLI passes it
    assert ddpmkit.load(f"owner/name@{PINNED}", device="cpu").config.diffusion.num_steps == 50
    assert ddpmkit.load("owner/name@main", device="cpu").config.diffusion.num_steps == 100


def test_a_local_folder_named_like_a_repo_id_wins(cache, tmp_path, monkeypatch):
    cache_repo(cache, "owner/name", MAIN)
    monkeypatch.chdir(tmp_path)
    local = write_pipeline(Path("owner/name"), scheduler=SCHEDULER | {"num_train_timesteps": 20})
    assert resolve_hub_name("owner/name") == "owner/name"
    assert ModelSource.find("owner/name").folder == local
    assert ddpmkit.load("owner/name", device="cpu").config.diffusion.num_steps == 20


def test_a_repo_with_only_bin_weights_is_refused(cache):
    snapshot = cache_repo(cache, "owner/pickled", MAIN)
    weights = snapshot / "unet" / "diffusion_pytorch_model.safetensors"
    weights.rename(weights.with_suffix(".bin"))
    with pytest.raises(FileNotFoundError, match=r"repo owner/pickled has only \.bin weights") as e:
        ModelSource.find("owner/pickled")
    assert "unet/diffusion_pytorch_model.bin" in str(e.value) and "pickle" in str(e.value)


def test_online_the_hub_lists_the_bin_weights_that_were_not_downloaded(cache, monkeypatch):
    """What snapshot_download leaves of a .bin-only repo: the JSON files, no weights."""
    snapshot = cache_repo(cache, "owner/pickled", MAIN)
    (snapshot / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    listing = ["model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.bin"]
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda *_, **__: str(snapshot))
    monkeypatch.setattr(huggingface_hub, "list_repo_files", lambda *_, **__: listing)
    with pytest.raises(FileNotFoundError, match=r"owner/pickled has only \.bin weights \(unet/"):
        ModelSource.find("owner/pickled")


def test_offline_a_snapshot_without_weights_is_named_with_what_is_missing(cache):
    snapshot = cache_repo(cache, "owner/no-weights", MAIN)
    (snapshot / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match=r"repo owner/no-weights: .*safetensors is missing"):
        ModelSource.find("owner/no-weights")  # and offline, whether it has .bin files is unknown


def test_a_repo_or_revision_not_in_the_cache_offline_is_named(cache):
    cache_repo(cache, "owner/name", MAIN)
    with pytest.raises(FileNotFoundError, match="repo owner/missing is not in the Hub cache"):
        ModelSource.find("owner/missing")
    with pytest.raises(FileNotFoundError, match="repo owner/name@nope is not in the Hub cache"):
        ModelSource.find("owner/name@nope")


def test_the_cli_samples_a_repo_id_and_names_a_missing_one(cache, tmp_path, capsys):
    cache_repo(cache, "owner/name", MAIN)
    grid = tmp_path / "grid.png"
    args = ["--steps", "3", "--num_samples", "2", "--quiet", "--out", str(grid)]
    assert main(["sample", "owner/name", *args]) == 0
    assert grid.is_file()
    assert main(["sample", "owner/missing", *args]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("ddpmkit sample: error: owner/missing: no such file or folder")
    assert "\n" not in error


def test_without_huggingface_hub_a_repo_id_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    expected = (
        "owner/name: no such file or folder; to read the Hugging Face Hub repo owner/name "
        "install the hub extra: pip install 'ddpmkit[hub]'"
    )
    with pytest.raises(FileNotFoundError) as error:
        ModelSource.find("owner/name")
    assert str(error.value) == expected
    with pytest.raises(FileNotFoundError, match="neither a checkpoint"):
        ModelSource.find("not-a-repo-id")  # a path like any other: huggingface_hub not asked


def test_huggingface_hub_is_imported_only_inside_functions():
    """``import ddpmkit`` stays light: the module imports huggingface_hub when a name is read."""
    tree = ast.parse(Path(hub.__file__).read_text())
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            names += [alias.name for alias in node.names]
            assert not any(n.startswith("huggingface_hub") for n in names), ast.dump(node)


def test_a_repo_id_writes_its_outputs_beside_the_user_not_into_the_cache(
    cache, tmp_path, monkeypatch
):
    cache_repo(cache, "owner/name", MAIN)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert main(["sample", "owner/name", "--steps", "2", "--num_samples", "2", "--quiet"]) == 0
    assert sorted(p.name for p in (work / "name" / "samples").iterdir())[0].endswith(".npz")
    assert not any(Path(cache).rglob("samples"))  # nothing written into the Hub cache
