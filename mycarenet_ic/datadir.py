"""The data directory: one per user by default (wherever the command is run from), checked before a command
uses it, and locked for the life of the sandbox that serves it.

Every command of one user finds the same CA, database and ``sandbox.json`` without being told, so that
``certs issue`` run from another directory issues from the running sandbox's CA, not a new one.
``--data-dir`` or ``MYCARENET_DATA_DIR`` names another. A sandbox holds an OS lock on ``sandbox.lock`` of its
directory while it runs (``flock``: the kernel drops it when the process ends, however it ends, so a crash
leaves nothing that blocks the next start); a second sandbox on the same directory is refused, and a
``sandbox.json`` whose lock nobody holds is known to be left over from a sandbox that is gone.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from pathlib import Path
from typing import IO

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Windows: no lock, as before
    fcntl = None  # type: ignore[assignment]

APP_NAME = "mycarenet-ic"
LOCK_FILE = "sandbox.lock"
STATE_FILE = "sandbox.json"
_HOW = "give --data-dir (or MYCARENET_DATA_DIR)"


def default_data_dir() -> Path:
    """The user's one data directory: the platform's user data directory for ``mycarenet-ic``
    (``$XDG_DATA_HOME/mycarenet-ic``, ``~/.local/share/mycarenet-ic`` on Linux)."""
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


class DataDirError(Exception):
    """A data directory a command cannot use: one line that says what is wrong and what to do."""


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path("/")


def check_data_dir(path: Path, *, create: bool) -> None:
    """Refuse (:class:`DataDirError`) a data directory that is a file, that is not writable, or (unless
    ``create``: the command makes what it needs) that is not there. Makes nothing itself."""
    if path.exists() and not path.is_dir():
        raise DataDirError(f"the data directory {path} is a file, not a directory: {_HOW} naming a directory")
    if not path.exists():
        if not create:
            raise DataDirError(f"no data directory at {path}: start the sandbox there first (`mycarenet-ic sandbox"
                               f" --data-dir {path}`), or {_HOW} of the running sandbox")
        parent = _nearest_existing(path)
        if not parent.is_dir():
            raise DataDirError(f"cannot make the data directory {path}: {parent} is a file; {_HOW}")
        _writable(parent, f"cannot make the data directory {path} in {parent}")
        return
    _writable(path, f"the data directory {path} is not writable")


def _writable(directory: Path, what: str) -> None:
    """Try it (``os.access`` says yes to root even where nobody may write, as on a read-only mount)."""
    try:
        with tempfile.TemporaryFile(dir=directory, prefix=".write-test."):
            pass
    except OSError as exc:
        raise DataDirError(f"{what} ({exc.strerror or exc}): run as its owner, or {_HOW} naming one you may write"
                           ) from None


class SandboxRunning(DataDirError):
    """Another sandbox already serves this data directory."""


class SandboxLock:
    """The lock a sandbox holds on its data directory while it runs (``<data-dir>/sandbox.lock``)."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / LOCK_FILE
        self._file: IO[str] | None = None

    def acquire(self) -> SandboxLock:
        """Take the lock, or raise :class:`SandboxRunning` naming the process that holds it."""
        if fcntl is None:  # pragma: no cover
            return self
        handle = open(self.path, "a+", encoding="ascii")  # noqa: SIM115 - held open for the sandbox's life
        try:
            os.chmod(self.path, 0o600)
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            handle.seek(0)
            holder = handle.read().strip() or "?"
            handle.close()
            if exc.errno not in (errno.EWOULDBLOCK, errno.EACCES, errno.EAGAIN):
                raise
            raise SandboxRunning(
                f"a sandbox is already running on {self.path.parent} (process {holder}; its addresses are in "
                f"{STATE_FILE}): use that one, stop it first, or {_HOW} for a second sandbox") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._file = handle
        return self

    @property
    def held(self) -> bool:
        return self._file is not None

    def release(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()  # closing drops the flock
            self._file = None


def sandbox_is_running(data_dir: Path) -> bool:
    """Whether a sandbox holds ``data_dir``'s lock now (from any process, this one included)."""
    path = Path(data_dir) / LOCK_FILE
    if fcntl is None:  # pragma: no cover - no locks: trust sandbox.json, as before
        return True
    try:
        handle = open(path, encoding="ascii")  # noqa: SIM115
    except OSError:
        return False
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


def write_running(data_dir: Path, urls: dict[str, str]) -> None:
    """Say where the sandbox serving ``data_dir`` listens (``sandbox.json``, read by ``read_running``)."""
    (Path(data_dir) / STATE_FILE).write_text(json.dumps({"services": urls}, indent=1))


def forget_running(data_dir: Path) -> None:
    """The sandbox of ``data_dir`` stops: its addresses go with it."""
    (Path(data_dir) / STATE_FILE).unlink(missing_ok=True)
