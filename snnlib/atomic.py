"""Atomic, exclusive file writes: a reader sees the previous file or the new one, never a torn or partial one.

Every write goes to a temporary file of its own in the target's folder (`.<name>.XXXXXXXX.tmp`, from
tempfile.mkstemp), is flushed to disk, and is renamed over the target (os.replace, atomic within a filesystem);
the folder is synced so the rename survives a node crash. Any failure, an interrupt included, removes the
temporary file. Only a SIGKILL or a crash can leave one behind, and the next write of the same target removes it.

Two processes writing one target would each produce a whole file, but which one survives would depend on timing,
so the second writer is refused: a non-blocking fcntl.flock on `<target>.lock`, held for the whole write, makes it
fail at once with WriteError naming the lock. The lock file exists only while it is held.

A full disk (ENOSPC, or a quota: EDQUOT) raises WriteError saying how much room the write needed. A file that
exists but cannot be read back (damaged or replaced by hand: the writes above never leave one) raises
UnreadableError naming it and the fix.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path

# The mode a plain open() would give a new file; mkstemp's temporaries are 0600. Read once: os.umask can only be
# read by setting it.
_UMASK = os.umask(0o022)
os.umask(_UMASK)

_DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}
# What torch's C++ writer says when the disk fills under torch.save (it raises RuntimeError, not OSError).
_DISK_FULL_MESSAGES = ("enforce fail at inline_container", "file write failed", "No space left")


class WriteError(RuntimeError):
    """A file could not be written (disk full, another writer); the message is one line with the fix."""


class UnreadableError(ValueError):
    """A stage's input file exists but cannot be read (truncated, garbage); the message is one line with the fix."""


def unreadable(path: Path, what: str, e: BaseException) -> UnreadableError:
    first = next((line.strip() for line in str(e).splitlines() if line.strip()), "")[:160]
    return UnreadableError(f"{path} is not a readable {what} ({type(e).__name__}: {first}); remake it with "
                           f"`snakemake --forcerun {path}` (and your usual options), or restore it")


def is_disk_full(e: BaseException) -> bool:
    if isinstance(e, OSError):
        return e.errno in _DISK_FULL_ERRNOS
    return isinstance(e, RuntimeError) and any(m in str(e) for m in _DISK_FULL_MESSAGES)


def disk_full_error(path: Path, nbytes: int) -> WriteError:
    mb = max(1, -(-nbytes // 2**20))  # MiB, rounded up
    return WriteError(f"no space left writing {path}; free {mb} MB and rerun")


def lock_path(path: Path) -> Path:
    path = Path(path)
    return path.with_name(path.name + ".lock")


@contextmanager
def write_lock(path: Path):
    """Hold the exclusive write lock of `path` (flock on `<path>.lock`), or raise WriteError at once if another
    process holds it. The lock file is removed while still locked, so no stale lock is left behind; a process
    that locked a lock file just unlinked by its holder notices (the path no longer names its file) and retries."""
    path = Path(path)
    lock = lock_path(path)
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise WriteError(f"another process is writing {path} (lock {lock} held); wait for it or kill it, "
                             "then rerun") from None
        except BaseException:
            os.close(fd)
            raise
        try:
            same = os.stat(lock).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the holder removed this lock file after we opened it: lock the current one
    try:
        yield
    finally:
        try:
            os.unlink(lock)
        finally:
            os.close(fd)


def _stale_temporaries(path: Path) -> list[Path]:
    """Temporaries of `path` left by a killed writer (mkstemp's random part is 8 characters of [a-z0-9_])."""
    pattern = re.compile(r"\." + re.escape(path.name) + r"\.[a-z0-9_]{8}\.tmp")
    try:
        return [path.parent / n for n in os.listdir(path.parent) if pattern.fullmatch(n)]
    except OSError:
        return []


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _sync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Replace `path` by `data` atomically, under its write lock (see the module docstring)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with write_lock(path):
        for stale in _stale_temporaries(path):  # the lock says no live writer owns them
            stale.unlink(missing_ok=True)
        tmp = None
        try:
            fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            tmp = Path(name)
            try:
                os.fchmod(fd, 0o666 & ~_UMASK)
                _write_all(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
            tmp = None
            _sync_dir(path.parent)
        except BaseException as e:
            if tmp is not None:
                tmp.unlink(missing_ok=True)
            if is_disk_full(e):
                raise disk_full_error(path, len(data)) from None
            raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj, allow_nan: bool = True) -> None:
    """`obj` as JSON (indent 1, final newline: the layout of the stage reports). allow_nan=False refuses NaN and
    infinities (ValueError) before anything is written; Python's json reads them back, strict JSON parsers do not."""
    atomic_write_text(path, json.dumps(obj, indent=1, allow_nan=allow_nan) + "\n")
