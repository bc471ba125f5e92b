"""Checkpoint files that cannot silently be wrong: atomic and exclusive writes (snnlib.atomic), a full disk, pickled
code refused unrun, and identities checked on load (snnlib.checkpoint)."""
from __future__ import annotations

import errno
import fcntl
import io
import json
import multiprocessing as mp
import os
import pickle
import shlex
from pathlib import Path

import pytest
import torch
from torch import nn

from snnlib import atomic, checkpoint
from snnlib.atomic import WriteError, atomic_write_json, atomic_write_text
from snnlib.checkpoint import CheckpointError


def leftovers(folder: Path) -> list[str]:
    """Temporaries and lock files in `folder`: none may outlive a write, whatever happened to it."""
    return sorted(p.name for p in folder.iterdir() if p.name.endswith((".tmp", ".lock")))


def small_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 3))


# --- atomic writes -------------------------------------------------------------------------------------------------

def test_text_and_json_writes_are_whole_and_leave_nothing_behind(tmp_path):
    atomic_write_text(tmp_path / "sub" / "a.txt", "one\n")
    atomic_write_text(tmp_path / "sub" / "a.txt", "two\n")
    atomic_write_json(tmp_path / "sub" / "r.json", {"acc": 0.5, "nan": float("nan")})
    assert (tmp_path / "sub" / "a.txt").read_text() == "two\n"
    assert (tmp_path / "sub" / "r.json").read_text().endswith("\n")
    assert json.loads((tmp_path / "sub" / "r.json").read_text())["acc"] == 0.5
    with pytest.raises(ValueError):  # refused before anything is written
        atomic_write_json(tmp_path / "sub" / "strict.json", {"x": float("inf")}, allow_nan=False)
    assert not (tmp_path / "sub" / "strict.json").exists()
    assert leftovers(tmp_path / "sub") == []
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "sub" / "a.txt").stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600


@pytest.mark.parametrize("failure", [OSError(errno.EIO, "Input/output error"), KeyboardInterrupt("killed")])
def test_a_failing_write_keeps_the_previous_file_and_leaves_no_temporary(tmp_path, monkeypatch, failure):
    path = tmp_path / "state.pt"
    checkpoint.atomic_save({"epoch": 1}, path)
    real_write_all = atomic._write_all

    def fails_halfway(fd, data):
        real_write_all(fd, bytes(data)[: len(data) // 2])
        raise failure

    monkeypatch.setattr(atomic, "_write_all", fails_halfway)
    with pytest.raises(type(failure)):
        checkpoint.atomic_save({"epoch": 2}, path)
    assert leftovers(tmp_path) == []
    assert torch.load(path, weights_only=True) == {"epoch": 1}


def test_a_temporary_left_by_a_killed_writer_is_removed_by_the_next_write(tmp_path):
    path = tmp_path / "state.pt"
    (tmp_path / ".state.pt.abcd1234.tmp").write_bytes(b"half a checkpoint")  # SIGKILL cannot clean up
    (tmp_path / ".state.pt.bak.abcd1234.tmp").write_bytes(b"another file's")  # not this path's: kept
    checkpoint.atomic_save({"epoch": 1}, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".state.pt.bak.abcd1234.tmp", "state.pt"]


def test_a_second_writer_is_refused_while_the_lock_is_held(tmp_path):
    path = tmp_path / "ann.pt"
    checkpoint.atomic_save({"v": 1}, path)
    fd = os.open(tmp_path / "ann.pt.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # another process, in effect: flock conflicts between open files
        with pytest.raises(CheckpointError) as e:
            checkpoint.atomic_save({"v": 2}, path)
        assert str(e.value) == (f"another process is writing {path} (lock {path}.lock held); wait for it or kill "
                                "it, then rerun")
        with pytest.raises(WriteError, match="another process is writing"):
            atomic_write_json(tmp_path / "ann.pt", {})
    finally:
        os.close(fd)
    assert torch.load(path, weights_only=True) == {"v": 1}
    (tmp_path / "ann.pt.lock").unlink()
    checkpoint.atomic_save({"v": 3}, path)
    assert torch.load(path, weights_only=True) == {"v": 3}
    assert leftovers(tmp_path) == []


def _writer(path: str, writer: int, saves: int, results) -> None:
    done = refused = 0
    try:
        for k in range(saves):
            value = writer * 1000 + k
            try:
                checkpoint.atomic_save({"writer": writer, "k": k, "data": torch.full((20_000,), value)}, Path(path))
                done += 1
            except CheckpointError as e:
                if "another process is writing" not in str(e):
                    raise
                refused += 1
        results.put(("writer", done, refused, None))
    except BaseException as e:  # noqa: BLE001 (reported to the test)
        results.put(("writer", done, refused, repr(e)))


def _reader(path: str, stop, results) -> None:
    reads = 0
    try:
        while not stop.is_set():
            if not os.path.exists(path):
                continue
            obj = torch.load(path, map_location="cpu", weights_only=True)
            # a whole file from one save: its tensor holds that save's value throughout
            if not bool((obj["data"] == obj["writer"] * 1000 + obj["k"]).all()) or obj["data"].numel() != 20_000:
                raise AssertionError(f"torn checkpoint: writer {obj['writer']} save {obj['k']}")
            reads += 1
        results.put(("reader", reads, 0, None))
    except BaseException as e:  # noqa: BLE001
        results.put(("reader", reads, 0, repr(e)))


def test_concurrent_writers_and_readers_never_see_a_torn_file(tmp_path):
    path = str(tmp_path / "shared.pt")
    ctx = mp.get_context("fork")
    results, stop = ctx.Queue(), ctx.Event()
    readers = [ctx.Process(target=_reader, args=(path, stop, results)) for _ in range(2)]
    writers = [ctx.Process(target=_writer, args=(path, w, 40, results)) for w in range(4)]
    for p in readers + writers:
        p.start()
    for p in writers:
        p.join(timeout=120)
    stop.set()
    for p in readers:
        p.join(timeout=60)
    got = [results.get(timeout=10) for _ in readers + writers]
    assert [g for g in got if g[3] is not None] == []
    assert all(p.exitcode == 0 for p in readers + writers)
    writes = sum(g[1] for g in got if g[0] == "writer")
    refused = sum(g[2] for g in got if g[0] == "writer")
    assert writes > 0 and writes + refused == 4 * 40
    assert sum(g[1] for g in got if g[0] == "reader") > 0
    final = torch.load(path, weights_only=True)
    assert bool((final["data"] == final["writer"] * 1000 + final["k"]).all())
    assert leftovers(tmp_path) == []


# --- a full disk ----------------------------------------------------------------------------------------------------

def _mb(nbytes: int) -> int:
    return -(-nbytes // 2**20)


@pytest.mark.parametrize("where", ["write", "fsync"])
def test_a_full_disk_is_one_line_with_the_size_and_leaves_no_temporary(tmp_path, monkeypatch, where):
    path = tmp_path / "ann.pt"
    checkpoint.atomic_save({"epoch": 1}, path)
    obj = {"w": torch.zeros(3 * 2**20 // 4 + 1000)}  # a little over 3 MiB of float32
    buf = io.BytesIO()
    torch.save(obj, buf)
    full = OSError(errno.ENOSPC, "No space left on device")
    if where == "write":
        real_write_all = atomic._write_all

        def fills_up(fd, data):
            real_write_all(fd, bytes(data)[:4096])
            raise full
        monkeypatch.setattr(atomic, "_write_all", fills_up)
    else:
        def fsync_fails(fd):
            raise full
        monkeypatch.setattr(atomic.os, "fsync", fsync_fails)
    with pytest.raises(CheckpointError) as e:
        checkpoint.atomic_save(obj, path)
    monkeypatch.undo()
    assert str(e.value) == f"no space left writing {path}; free {_mb(len(buf.getvalue()))} MB and rerun"
    assert _mb(len(buf.getvalue())) == 4
    assert leftovers(tmp_path) == []
    assert torch.load(path, weights_only=True) == {"epoch": 1}


def test_torch_s_own_disk_full_error_and_a_full_disk_under_json(tmp_path, monkeypatch):
    def enforce_fail(obj, f, *a, **k):
        raise RuntimeError("[enforce fail at inline_container.cc:603] . unexpected pos 64 vs 0")
    monkeypatch.setattr(torch, "save", enforce_fail)
    with pytest.raises(CheckpointError, match=r"^no space left writing .*ann\.pt; free 1 MB and rerun$"):
        checkpoint.atomic_save({"epoch": 1}, tmp_path / "ann.pt")
    monkeypatch.undo()

    def no_space(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(atomic, "_write_all", no_space)
    with pytest.raises(WriteError) as e:
        atomic_write_json(tmp_path / "r.json", {"a": 1})
    assert str(e.value) == f"no space left writing {tmp_path / 'r.json'}; free 1 MB and rerun"
    assert leftovers(tmp_path) == [] and not (tmp_path / "r.json").exists()
