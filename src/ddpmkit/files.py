"""Writing outputs so that a kill never leaves half of one under its final name: a file is
written under a temporary name in its folder and renamed into place; a folder is filled as
``NAME.partial`` and renamed to NAME when complete. A kill leaves the old state or the new one
(and at worst a hidden temporary file or a ``.partial`` folder, which the next run replaces), so
the command can simply be run again."""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = [
    "finish_partial_folder",
    "partial_folder",
    "partial_path",
    "require_disk_space",
    "staged",
    "start_partial_folder",
    "write_atomically",
    "write_text_atomically",
]


def write_atomically(
    path: Path, write: Callable[[Path], object], *, overwrite: bool = False
) -> Path:
    """Write ``path`` through ``write(temporary)`` and rename the result into place.

    The temporary file is in the same folder and ends in the same suffix (writers such as
    Pillow and NumPy pick the format by it). Without ``overwrite`` an existing ``path`` is a
    FileExistsError naming it, also when it appears while ``write`` runs.

    Args:
        path: the file to write.
        write: writes the whole file at the path it is given.
        overwrite: replace an existing ``path`` instead of refusing.
    """
    path = Path(path)
    if not overwrite and path.exists():
        raise FileExistsError(f"{path} already exists; refusing to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=f".partial{path.suffix}"
    )
    os.close(handle)
    temporary = Path(name)
    try:
        write(temporary)
        if overwrite:
            os.replace(temporary, path)
        else:
            _rename_without_replacing(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def write_text_atomically(path: Path, text: str, *, overwrite: bool = False) -> Path:
    """``text`` written to ``path`` as `write_atomically` writes files.

    Args:
        path: the file to write.
        text: its whole content.
        overwrite: replace an existing ``path`` instead of refusing.
    """
    return write_atomically(path, lambda where: where.write_text(text), overwrite=overwrite)


@contextmanager
def partial_folder(folder: Path) -> Iterator[Path]:
    """Fill ``NAME.partial`` (`start_partial_folder`) and rename it to ``folder`` when the block
    ends without an error (`finish_partial_folder`); on an error it stays, to be replaced by the
    next attempt.

    Args:
        folder: the folder to write.
    """
    partial = start_partial_folder(folder)
    yield partial
    finish_partial_folder(folder)


def start_partial_folder(folder: Path) -> Path:
    """``NAME.partial``, emptied of what a killed attempt left and made anew; an existing
    ``folder`` is a FileExistsError naming it.

    Args:
        folder: the folder to write.
    """
    folder = Path(folder)
    if folder.exists():
        raise FileExistsError(f"{folder} already exists; refusing to overwrite it")
    partial = partial_path(folder)
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    return partial


def finish_partial_folder(folder: Path) -> Path:
    """Rename the complete ``NAME.partial`` to ``folder`` (refused if ``folder`` appeared).

    Args:
        folder: the folder written.
    """
    folder = Path(folder)
    if folder.exists():
        raise FileExistsError(f"{folder} already exists; refusing to overwrite it")
    os.rename(partial_path(folder), folder)
    return folder


def partial_path(folder: Path) -> Path:
    """Where ``folder`` is filled before it is renamed.

    Args:
        folder: the folder to write.
    """
    return Path(folder).with_name(Path(folder).name + ".partial")


@contextmanager
def staged(paths: list[Path]) -> Iterator[dict[Path, Path]]:
    """Several outputs that appear together: the block writes each final path's file at the
    fresh hidden name it is given, and when the block ends without an error all are renamed into
    place one after the other (no rename replaces a file); on an error, or if a final name is
    taken, every staged file is removed.

    Args:
        paths: the final paths; each must be new.
    """
    names = {Path(path): _staging_name(Path(path)) for path in paths}
    try:
        for path in names:
            if path.exists():
                raise FileExistsError(f"{path} already exists; refusing to overwrite it")
        yield names
        for path, name in names.items():
            _rename_without_replacing(name, path)
    finally:
        for name in names.values():
            name.unlink(missing_ok=True)


def require_disk_space(folder: Path, needed: float, what: str, hint: str) -> None:
    """A ValueError naming ``what`` when ``folder``'s disk has less than ``needed`` bytes free.

    Args:
        folder: where the files go (its nearest existing parent is measured).
        needed: the bytes they take.
        what: the work, for the message.
        hint: which option to lower.
    """
    existing = Path(folder).resolve()
    while not existing.exists():
        existing = existing.parent
    free = shutil.disk_usage(existing).free
    if needed > free:
        raise ValueError(
            f"{what} takes about {needed / 2**30:,.1f} GiB on disk, but {free / 2**30:,.1f} GiB "
            f"are free where it goes ({existing}); {hint}"
        )


def _staging_name(path: Path) -> Path:
    """A hidden, unused name beside ``path`` with its suffix."""
    return path.with_name(f".{path.name}.{secrets.token_hex(6)}.partial{path.suffix}")


def _rename_without_replacing(source: Path, destination: Path) -> None:
    """Rename ``source`` to ``destination`` unless that exists (a hard link is created only if
    the name is free, atomically); on file systems without hard links, check then rename."""
    try:
        os.link(source, destination)
    except FileExistsError:
        raise FileExistsError(f"{destination} already exists; refusing to overwrite it") from None
    except OSError:
        if destination.exists():
            raise FileExistsError(
                f"{destination} already exists; refusing to overwrite it"
            ) from None
        os.replace(source, destination)
