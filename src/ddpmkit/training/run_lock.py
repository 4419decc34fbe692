"""One training process per run folder: an OS lock (``flock``) on ``RUN/.lock``, held while a
process trains there and dropped by the kernel when that process ends, however it ends (a
SIGKILL leaves no stale lock). The holder writes its PID, host and start time into the file, so
that a second command can say who holds the folder."""

from __future__ import annotations

import fcntl
import os
import socket
import time
from pathlib import Path
from typing import IO

LOCK_FILE = ".lock"
"""The lock's file in the run folder (a run folder holding only it counts as empty)."""


class RunLockedError(ValueError):
    """Another process is training in the run folder."""


class RunLock:
    """The lock of the run folder ``folder`` (created if absent when acquired).

    Args:
        folder: the run folder.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._file: IO[str] | None = None

    @property
    def held(self) -> bool:
        """Whether this process holds the lock."""
        return self._file is not None

    def acquire(self) -> None:
        """Take the lock, or raise `RunLockedError` naming the process that holds it."""
        if self._file is not None:
            return
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            handle = open(self.folder / LOCK_FILE, "a+")  # noqa: SIM115 - held until release
        except OSError as error:
            message = f"run folder {self.folder}: cannot write there ({error.strerror})"
            raise ValueError(message) from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise RunLockedError(
                f"run folder {self.folder} is in use: {holder} is training there; wait for it "
                "to end or stop it (the lock ends with its process)"
            ) from None
        handle.seek(0)
        handle.truncate()
        started = time.strftime("%Y-%m-%d %H:%M:%S")
        handle.write(f"process {os.getpid()} on {socket.gethostname()} (since {started})\n")
        handle.flush()
        self._file = handle

    def release(self) -> None:
        """Let the lock go (closing the file drops the flock)."""
        if self._file is not None:
            self._file.close()
            self._file = None
