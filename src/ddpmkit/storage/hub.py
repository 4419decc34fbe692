"""Hugging Face Hub repo ids as model names: ``owner/name`` or ``owner/name@revision``.

A name that exists on disk is always the local file or folder. Any other name of the form
``owner/name`` (the Hub's repo-id rules) is a Hub model repo; ``@revision`` pins a branch, a tag
or a commit hash (``google/ddpm-cifar10-32@main``, ``owner/name@refs/pr/1``, ``owner/name@<40 hex
digits>``), and without it the repo's default branch (``main``) is read. Only the repo's JSON and
safetensors files are downloaded, by ``huggingface_hub.snapshot_download`` into the standard Hub
cache (``HF_HOME`` / ``HF_HUB_CACHE``); with ``HF_HUB_OFFLINE=1`` the cached snapshot is read
without any network access. The snapshot folder is then read like any local model folder.

``huggingface_hub`` is the optional ``hub`` extra; it is imported only when a Hub name is read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ddpmkit.storage.diffusers_folders import is_diffusers_folder, locate

_PART = r"\w(?:[\w.-]{0,94}\w)?"  # alphanumerics, _ . -; not first or last: . -; at most 96
_NAME = re.compile(rf"(?P<repo>{_PART}/{_PART})(?:@(?P<revision>\S+))?", re.ASCII)
INSTALL = "pip install 'ddpmkit[hub]'"


@dataclass(frozen=True)
class HubName:
    """A Hub model repo and the revision to read (None: the default branch)."""

    repo_id: str
    revision: str | None = None

    def __str__(self) -> str:
        return self.repo_id if self.revision is None else f"{self.repo_id}@{self.revision}"


def parse_hub_name(text: str) -> HubName | None:
    """The Hub repo ``text`` names, or None where it is not of the form ``owner/name[@revision]``.

    Args:
        text: a model name as the user wrote it (``owner/name`` or ``owner/name@revision``).
    """
    match = _NAME.fullmatch(text)
    if match is None:
        return None
    repo_id = match["repo"]
    if "--" in repo_id or ".." in repo_id or repo_id.endswith(".git"):
        return None  # the Hub refuses these names
    return HubName(repo_id, match["revision"])


def resolve_hub_name(path: str | Path) -> str | Path:
    """``path`` itself, unless it names no file or folder but a Hub repo: then the folder of the
    repo's snapshot in the Hub cache (its JSON and safetensors files; online, those of the
    revision's current commit are downloaded where missing).

    Args:
        path: a model folder, or a Hub repo id ``owner/name`` or ``owner/name@revision``.

    Raises:
        FileNotFoundError: the repo or revision does not exist or cannot be read (offline and not
            cached), huggingface_hub is not installed, or the repo has only .bin weights.
        ValueError: the repo holds a diffusers pipeline that ddpmkit does not read.
    """
    text = path.as_posix() if isinstance(path, Path) else path
    name = parse_hub_name(text)
    if name is None or Path(path).exists():
        return path
    snapshot = download(name, text)
    check_weights(name, snapshot)
    return snapshot


def download(name: HubName, text: str) -> Path:
    """The local snapshot folder of the repo's JSON and safetensors files, downloaded into the Hub
    cache where they are not there yet (offline, the cache alone is read).

    Args:
        name: the repo and revision.
        text: the name as the user wrote it, for the messages.
    """
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import (  # their module from huggingface_hub 0.25 on
            HfHubHTTPError,
            LocalEntryNotFoundError,
            RepositoryNotFoundError,
            RevisionNotFoundError,
        )
    except ImportError:
        raise FileNotFoundError(
            f"{text}: no such file or folder; to read the Hugging Face Hub repo {name.repo_id} "
            f"install the hub extra: {INSTALL}"
        ) from None
    where = f"{text}: no such file or folder, and the Hugging Face Hub repo {name}"
    try:
        folder = snapshot_download(
            name.repo_id, revision=name.revision, allow_patterns=["*.json", "*.safetensors"]
        )
    except RevisionNotFoundError:
        raise FileNotFoundError(f"{where}: the repo has no revision {name.revision!r}") from None
    except RepositoryNotFoundError:
        raise FileNotFoundError(
            f"{where} does not exist (or it is private or gated: log in with `hf auth login` or "
            "set HF_TOKEN)"
        ) from None
    except LocalEntryNotFoundError:
        raise FileNotFoundError(
            f"{where} is not in the Hub cache ({_cache()}) and the Hub cannot be reached "
            "(HF_HUB_OFFLINE is set, or there is no connection)"
        ) from None
    except HfHubHTTPError as error:
        raise FileNotFoundError(f"{where} cannot be read: {error}") from None
    return Path(folder)


def check_weights(name: HubName, snapshot: Path) -> None:
    """Nothing, where the snapshot holds the safetensors weights its model reads; otherwise a
    FileNotFoundError naming the repo, which says so when the repo has only .bin weights.

    Args:
        name: the repo and revision the snapshot was downloaded from.
        snapshot: the local snapshot folder.
    """
    try:
        if is_diffusers_folder(snapshot):
            locate(snapshot)
            return
        if next(snapshot.rglob("*.safetensors"), None) is not None:
            return  # a ddpmkit checkpoint or run folder, read by resolve_checkpoint
        problem = f"{snapshot} holds no .safetensors weights"
    except FileNotFoundError as error:
        problem = str(error)
    except ValueError as error:  # a pipeline ddpmkit does not read
        raise ValueError(f"the Hugging Face Hub repo {name}: {error}") from None
    pickles = pickled_weights(name, snapshot)
    if pickles:
        raise FileNotFoundError(
            f"the Hugging Face Hub repo {name} has only .bin weights ({', '.join(pickles)}), no "
            ".safetensors: a .bin is a pickle, which would run code when loaded, so ddpmkit does "
            "not read it (convert it with diffusers' save_pretrained(..., "
            "safe_serialization=True))"
        )
    unchecked = "; offline, the repo's file list was not read" if _offline() else ""
    raise FileNotFoundError(f"the Hugging Face Hub repo {name}: {problem}{unchecked}")


def pickled_weights(name: HubName, snapshot: Path) -> list[str]:
    """The repo's ``.bin`` files: those in the cached snapshot, and, online, those the Hub lists
    (offline, a .bin that was never downloaded is not known).

    Args:
        name: the repo and revision.
        snapshot: the local snapshot folder.
    """
    found = {p.relative_to(snapshot).as_posix() for p in snapshot.rglob("*.bin")}
    from huggingface_hub import list_repo_files

    if not _offline():
        try:
            listed = list_repo_files(name.repo_id, revision=name.revision)
        except Exception:  # the listing only improves the message; without it the reader's stands
            listed = []
        found |= {f for f in listed if f.endswith(".bin")}
    return sorted(found)


def _cache() -> str:
    """The Hub cache folder huggingface_hub reads (``HF_HUB_CACHE``, or ``HF_HOME``/hub)."""
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def _offline() -> bool:
    """Whether huggingface_hub is in offline mode (``HF_HUB_OFFLINE``, read at its import)."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def outputs_folder_in_hub_cache(folder: Path) -> Path | None:
    """Where commands write for a model read from the Hub cache: ``./<repo name>`` in the working
    directory, never inside the cache (None for a folder outside it).

    Args:
        folder: the model folder (a snapshot ``models--owner--name/snapshots/<commit>``).
    """
    parts = folder.resolve().parts
    for index, part in enumerate(parts[:-2]):
        if part.startswith("models--") and parts[index + 1] == "snapshots":
            return Path.cwd() / part.split("--")[-1]
    return None
