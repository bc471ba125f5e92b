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


# --- pickled code ---------------------------------------------------------------------------------------------------

class RunsAShellCommand:
    """Unpickling this runs `touch <marker>`: what a hostile "checkpoint" would do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


def code_message(path: Path) -> str:
    return (f"{path}: refused: contains code, not weights (a file from an untrusted source?); delete it and rerun "
            "the job that makes it; it has been left as it is.")


@pytest.mark.parametrize("kind", ["model", "training"])
def test_a_checkpoint_that_pickles_code_is_refused_and_the_code_never_runs(tmp_path, kind):
    marker = tmp_path / "code_ran"
    pickle.loads(pickle.dumps(RunsAShellCommand(marker)))  # the payload is live: plain unpickling runs it
    assert marker.exists()
    marker.unlink()
    path = tmp_path / "ann.pt"
    torch.save({"format": checkpoint.FORMAT, "kind": kind, "model": RunsAShellCommand(marker)}, path)
    before = path.read_bytes()
    with pytest.raises(CheckpointError) as e:
        if kind == "model":
            checkpoint.load_model_state(path, small_model())
        else:
            model = small_model()
            opt = torch.optim.SGD(model.parameters(), lr=0.1)
            checkpoint.load_training_state(path, model, opt, torch.optim.lr_scheduler.StepLR(opt, 1),
                                           torch.Generator(), fingerprint="f")
    assert str(e.value) == code_message(path)
    assert not marker.exists(), "the pickled code ran"
    assert path.read_bytes() == before


@pytest.mark.filterwarnings("ignore:Detected pickle protocol 4")
def test_a_pickled_python_object_is_code_too_but_damage_is_damage(tmp_path):
    import argparse
    torch.save({"format": checkpoint.FORMAT, "kind": "model", "args": argparse.Namespace(a=1)}, tmp_path / "ns.pt")
    with pytest.raises(CheckpointError) as e:
        checkpoint.safe_load(tmp_path / "ns.pt", "model")
    assert str(e.value) == code_message(tmp_path / "ns.pt")

    checkpoint.save_model(tmp_path / "good.pt", small_model(), {"experiment": "e"})
    whole = (tmp_path / "good.pt").read_bytes()
    damaged = {"truncated.pt": whole[: len(whole) // 2], "garbage.pt": b"this is not a checkpoint\n" * 10,
               "empty.pt": b"", "raw_pickle.pt": pickle.dumps({"a": 1}, protocol=4)}
    for name, data in damaged.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(CheckpointError) as e:
            checkpoint.load_model_state(tmp_path / name, small_model())
        msg = str(e.value)
        assert msg.startswith(f"{tmp_path / name} is not a readable model checkpoint: it is damaged, truncated or "
                              "not a torch file"), msg
        assert "contains code" not in msg and "\n" not in msg


# --- identities -----------------------------------------------------------------------------------------------------

IDENT = {"config": "fashion", "experiment": "fashion_vgg", "seed": 0, "recipe": "ab12", "model": "vgg16", "L": 8}


def test_identity_is_stored_and_checked_key_by_key(tmp_path):
    path = tmp_path / "ann.pt"
    made = small_model(0)
    checkpoint.save_model(path, made, IDENT)
    model = small_model(1)
    assert checkpoint.load_model_state(path, model) == IDENT  # no expectation: loads as before
    assert checkpoint.load_model_state(path, model, expect={"experiment": "fashion_vgg", "L": 8}) == IDENT
    assert torch.equal(model[0].weight, made[0].weight)


def test_an_identity_mismatch_is_one_line_naming_both_sides_and_the_weights_stay_untouched(tmp_path):
    path = tmp_path / "ann.pt"
    checkpoint.save_model(path, small_model(0), IDENT)
    model = small_model(1)
    before = model[0].weight.clone()
    with pytest.raises(CheckpointError) as e:
        checkpoint.load_model_state(path, model, expect={"experiment": "mnist_lenet", "L": 4, "recipe": "cd34"})
    assert str(e.value) == (
        f"{path} was made for experiment=fashion_vgg L=8 recipe=ab12 but this job expects experiment=mnist_lenet "
        f"L=4 recipe=cd34; delete it (or rerun its producing job with `snakemake --forcerun {path}`), then rerun "
        "this one.")
    assert torch.equal(model[0].weight, before)
    with pytest.raises(CheckpointError, match="was made for seed=0 but this job expects seed=1;"):
        checkpoint.load_model_state(path, model, expect={"seed": 1})


def test_a_missing_identity_is_refused_when_one_is_expected(tmp_path):
    path = tmp_path / "ann.pt"
    checkpoint.atomic_save({"format": checkpoint.FORMAT, "kind": "model", "model": small_model().state_dict()}, path)
    assert checkpoint.load_model_state(path, small_model()) == {}
    with pytest.raises(CheckpointError) as e:
        checkpoint.load_model_state(path, small_model(), expect={"experiment": "mnist_lenet", "L": 4})
    assert str(e.value).startswith(f"{path} records no identity (an older snnlib or another tool wrote it) but "
                                   "this job expects experiment=mnist_lenet L=4; delete it")
    checkpoint.save_model(path, small_model(), {"experiment": "mnist_lenet"})  # one key of two recorded
    with pytest.raises(CheckpointError, match="was made for experiment=mnist_lenet L=<none> but this job expects "
                                              "experiment=mnist_lenet L=4;"):
        checkpoint.load_model_state(path, small_model(), expect={"experiment": "mnist_lenet", "L": 4})


@pytest.mark.parametrize("identity", [{}, None, {"L": [8]}, {"model": small_model}])
def test_save_model_takes_a_plain_identity(tmp_path, identity):
    with pytest.raises(TypeError, match="identity"):
        checkpoint.save_model(tmp_path / "ann.pt", small_model(), identity)
    assert not (tmp_path / "ann.pt").exists()


def _training(seed: int = 0):
    model = small_model(seed)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    return model, opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=3), torch.Generator().manual_seed(seed)


def test_a_training_checkpoint_without_the_expected_fingerprint_is_refused(tmp_path):
    path = tmp_path / "train_state.pt"
    checkpoint.save_training_state(path, *_training(), 1, [])  # no fingerprint recorded
    assert checkpoint.load_training_state(path, *_training())["epoch"] == 1  # none expected: accepted
    with pytest.raises(CheckpointError) as e:
        checkpoint.load_training_state(path, *_training(), fingerprint="ab12-seed0")
    assert str(e.value) == (f"{path} records no fingerprint (an older snnlib or another tool wrote it) but this job "
                            "expects fingerprint=ab12-seed0 (another configuration or seed); move it away (or delete "
                            "it) to train from epoch 0, and rerun.")
    checkpoint.save_training_state(path, *_training(), 1, [], fingerprint="cd34-seed0")
    with pytest.raises(CheckpointError) as e:
        checkpoint.load_training_state(path, *_training(), fingerprint="ab12-seed0")
    assert str(e.value).startswith(f"{path} was made by a run with fingerprint=cd34-seed0 but this job expects "
                                   "fingerprint=ab12-seed0 (another configuration or seed);")
    assert checkpoint.load_training_state(path, *_training(), fingerprint="cd34-seed0")["epoch"] == 1


def test_a_checkpoint_that_does_not_fit_the_model_is_one_line(tmp_path):
    path = tmp_path / "ann.pt"
    checkpoint.save_model(path, small_model(), {"experiment": "e"})
    with pytest.raises(CheckpointError) as e:
        checkpoint.load_model_state(path, nn.Sequential(nn.Linear(5, 3), nn.Linear(3, 2)))
    assert "does not fit the model" in str(e.value) and "\n" not in str(e.value)
