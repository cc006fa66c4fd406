"""One writer per store: a lock file beside the store, held by the capturing process.

``acts.zarr.lock`` holds the owner's pid, host and start time (for the message a second
writer gets) and is locked with ``flock``: the kernel drops the lock when its owner dies, so a
``kill -9`` never leaves a store locked for ever. Where ``flock`` is not available the owner's
pid is checked instead (a dead pid on this host means a stale lock).

Workers of a distributed capture do not lock: the client process holds the lock for them and
they write disjoint chunks.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from neuralatlas.errors import StoreError, StoreLockedError

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


def lock_path(store: str | os.PathLike[str]) -> Path:
    """The lock file of the store at ``store`` (a sibling: it exists before the store does)."""
    store = Path(store)
    return store.with_name(store.name + ".lock")


class StoreLock:
    """Hold the write lock of a store folder; a context manager.

    Raises
    ------
    StoreLockedError
        Another live process holds it (its pid, host and start time are named).
    StoreError
        The lock file cannot be written (read-only or inaccessible folder).
    """

    def __init__(self, store: str | os.PathLike[str], purpose: str = "capture"):
        self.store = Path(store)
        self.path = lock_path(store)
        self.purpose = purpose
        self._fd: int | None = None

    def __enter__(self) -> StoreLock:
        self.acquire()
        return self

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()

    def acquire(self) -> None:
        """Take the lock, or raise naming the process that holds it."""
        for _ in range(5):  # a lock file removed between our open and our flock: try again
            fd = self._open()
            if self._lock(fd):
                try:
                    same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
                except FileNotFoundError:
                    same = False
                if same:
                    self._fd = fd
                    self._write_owner(fd)
                    return
            else:
                owner = _read_owner(self.path)
                if owner is not None and fcntl is None and _dead(owner):
                    os.close(fd)
                    self.path.unlink(missing_ok=True)
                    continue
                os.close(fd)
                raise StoreLockedError(_locked_message(self.store, self.path, owner, self.purpose))
            os.close(fd)
        raise StoreLockedError(_locked_message(self.store, self.path, _read_owner(self.path), self.purpose))

    def release(self) -> None:
        """Give the lock back (nothing when not held)."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            # remove it while still holding it: a waiter that opened the old file notices the
            # inode changed and retries on a new one
            owner = _read_owner(self.path)
            if owner is not None and owner.get("pid") == os.getpid():
                self.path.unlink()
        with contextlib.suppress(OSError):
            os.close(self._fd)
        self._fd = None

    # -------------------------------------------------------------- internals
    def _open(self) -> int:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                why = "the file system is read-only" if err.errno == errno.EROFS else err.strerror
                raise StoreError(
                    f"Cannot write in {self.path.parent} ({why}), so the store {self.store} cannot be"
                    " written there. Choose an output folder you can write to, or fix its permissions."
                ) from None
            raise

    def _lock(self, fd: int) -> bool:
        if fcntl is None:
            return _read_owner(self.path) is None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False
        except OSError as err:  # file systems without flock: fall back to the pid check
            if err.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                raise
            owner = _read_owner(self.path)
            return owner is None or owner.get("pid") == os.getpid() or _dead(owner)

    def _write_owner(self, fd: int) -> None:
        info = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(),
                "purpose": self.purpose}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)


def _read_owner(path: Path) -> dict[str, Any] | None:
    try:
        info = json.loads(path.read_text() or "null")
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def _dead(owner: dict[str, Any]) -> bool:
    """Whether the owner is a process of this host that no longer runs."""
    if owner.get("host") != socket.gethostname():
        return False
    try:
        os.kill(int(owner["pid"]), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, KeyError, ValueError, TypeError):
        return False
    return False


def _locked_message(store: Path, path: Path, owner: dict[str, Any] | None, purpose: str) -> str:
    if owner:
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(owner.get("started", 0))))
        who = f"process {owner.get('pid')} on host {owner.get('host')}, since {since}"
    else:
        who = "another process"
    return (f"Another {owner.get('purpose', purpose) if owner else purpose} is writing to {store}"
            f" ({who}; lock file {path}). Wait for it to finish, then run this again: it uses the"
            " finished store (or resumes it, if that process was stopped). A stopped or killed"
            " process releases the lock by itself; there is no need to delete anything.")
