"""Fault injection for tests/test_faults.py, in every Python process of a Snakemake run (snakemake and each job).

tests/test_faults.py puts this folder first on PYTHONPATH, and Python imports `sitecustomize` at start-up. Inert
unless SNNLIB_FAULT is set, to `<action>:<file name>:<n>:<marker file>`:

    kill       SIGKILL this process right after its n-th write of <file name> is complete
    torn       write half of the n-th write's temporary file, then SIGKILL this process (a job killed mid-write)
    crash      like torn, but SIGKILL the whole process group: snakemake and every job (a node failure)
    enospc     write half, then fail with ENOSPC, as a full disk does

Every artefact goes through snnlib.atomic.atomic_write_bytes (checkpoints, reports, outcomes, tables, plots),
which this wraps. The fault fires once: it creates <marker file> first, and a process that finds the marker there
runs clean, so the rerun that must recover is not disturbed again.
"""
import errno
import os
import signal

_SPEC = os.environ.get("SNNLIB_FAULT")

if _SPEC:
    from pathlib import Path

    import snnlib.atomic as _atomic

    _action, _name, _nth, _marker = _SPEC.split(":", 3)
    _nth = int(_nth)
    _count = {"writes": 0}
    _target = []  # the path atomic_write_bytes is writing now
    _real_write_bytes, _real_write_all = _atomic.atomic_write_bytes, _atomic._write_all

    def _fire() -> bool:
        """True once, in the process that claims the marker; its write is the n-th of the target name."""
        try:
            fd = os.open(_marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        os.write(fd, f"{_action} {_target[-1] if _target else ''} pid {os.getpid()}\n".encode())
        os.close(fd)
        return True

    def _matches() -> bool:
        return bool(_target) and _target[-1].name == _name and _count["writes"] == _nth \
            and not os.path.exists(_marker)

    def _write_all(fd, data):
        if _action in ("torn", "crash", "enospc") and _matches() and _fire():
            _real_write_all(fd, bytes(data)[: len(data) // 2])
            os.fsync(fd)
            if _action == "enospc":
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            os.killpg(0, signal.SIGKILL) if _action == "crash" else os.kill(os.getpid(), signal.SIGKILL)
        _real_write_all(fd, data)

    def _write_bytes(path, data):
        path = Path(path)
        if path.name == _name:
            _count["writes"] += 1
        _target.append(path)
        try:
            _real_write_bytes(path, data)
            if _action == "kill" and _matches() and _fire():
                os.kill(os.getpid(), signal.SIGKILL)
        finally:
            _target.pop()

    _atomic._write_all = _write_all
    _atomic.atomic_write_bytes = _write_bytes
