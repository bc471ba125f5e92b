"""Fault injection: kills, a full disk and damaged files at several points of a small real run, then recovery.

The run is the whole DAG of tests/configs/faults.yaml (train -> convert -> evaluate -> aggregate, MNIST, a
checkpoint after every batch). Faults come from tests/faults/sitecustomize.py, loaded into snakemake and every job
through PYTHONPATH: a SIGKILL of a job right after its n-th write of a file, a SIGKILL of the whole process group
(snakemake and its jobs, as a node failure) halfway through a write, ENOSPC halfway through a write; a real full
disk (a small tmpfs, where this machine lets the test mount one); damaged files (a truncated checkpoint, a
truncated model, garbage in a report). After each:

- every artefact on disk is whole: each .pt loads, each .json parses, each .npz and .csv reads, and once the run
  has recovered no temporary or lock file is left;
- the documented recovery finishes the run: the same command (Snakemake's retry, or after a killed snakemake
  `--unlock` and `--rerun-incomplete`; for a damaged file, the one-line error's own fix);
- the rows of results.csv (all but the wall times) and the trained weights equal the undisturbed run's.

tests/test_resume.py covers the training command itself (SIGKILL/SIGTERM mid-epoch, bad checkpoints); this suite
covers the stages around it and the DAG. Marked slow; about 4 minutes on 2 cores.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "tests" / "configs" / "faults.yaml"
INJECTOR = REPO / "tests" / "faults"
RUN = Path("runs/faults")
TRAIN = RUN / "mnist_lenet" / "seed0" / "qcfs"
TARGET = str(RUN / "results.csv")
TRAIN_LOG = Path("logs/faults/train/mnist_lenet_seed0_qcfs.log")
# columns that are not results: how long the jobs took and when
NOT_RESULTS = ["train_wall_s", "train_epoch_s", "eval_wall_s", "timestamp"]
LIMIT_S = 300

pytestmark = [pytest.mark.slow, pytest.mark.data]


@pytest.fixture(scope="module", autouse=True)
def _needs_mnist():
    from snnlib.config import load_config
    from snnlib.data import DatasetNotFoundError, load_split
    from snnlib.experiment_data import data_root
    try:
        load_split("mnist", "test", data_root(load_config(CONFIG)))
    except DatasetNotFoundError as e:
        pytest.skip(f"MNIST is not prepared ({e}); run scripts/fetch_data.sh")


def ckpt_rel() -> Path:
    from snnlib.config import load_config, training_hash
    return TRAIN / "ckpt" / training_hash(load_config(CONFIG)["experiments"]["mnist_lenet"], "qcfs") / "train_state.pt"


def snakemake(workdir: Path, *extra: str, fault: str | None = None, logdir: Path | None = None,
              wait: bool = True):
    """The run's command; with `fault` (`action:file:n`, tests/faults/sitecustomize.py) injected once. Its output
    goes to a file beside `workdir` (or in `logdir`)."""
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(CONFIG), "--cores", "2", "--set-threads", "train=1", "evaluate=1", "--nocolor",
           TARGET, *extra]
    env = {k: v for k, v in os.environ.items() if k != "SNNLIB_FAULT"}
    env["PYTHONPATH"] = os.pathsep.join([str(INJECTOR), str(REPO)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH")
                                                                      else []))
    if fault:
        env["SNNLIB_FAULT"] = f"{fault}:{workdir.parent / (workdir.name + '.fault')}"
    log = open((logdir or workdir.parent) / f"{workdir.name}.snakemake.{time.monotonic_ns()}.log", "w+")
    # its own process group: a `crash` fault kills snakemake and its jobs, never pytest
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    if not wait:
        return proc, log
    return finish(proc, log)


def finish(proc: subprocess.Popen, log) -> subprocess.CompletedProcess:
    try:
        proc.wait(timeout=LIMIT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        pytest.fail(f"snakemake ran over {LIMIT_S} s")
    finally:
        try:  # a job that outlived its snakemake (which a full disk can stop) must not write into the recovery
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        log.seek(0)
        out = log.read()
        log.close()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out)


def recover(workdir: Path, logdir: Path | None = None) -> subprocess.CompletedProcess:
    """After a killed snakemake (README, Recovery): `--unlock`, then the same command with `--rerun-incomplete`."""
    unlock = snakemake(workdir, "--unlock", logdir=logdir)
    assert unlock.returncode == 0, unlock.stdout
    return snakemake(workdir, "--rerun-incomplete", logdir=logdir)


def fired(workdir: Path) -> str:
    marker = workdir.parent / (workdir.name + ".fault")
    assert marker.exists(), "the fault never fired"
    return marker.read_text()


def assert_whole(workdir: Path, recovered: bool) -> None:
    """Every artefact under runs/ reads back; once recovered, no temporary or lock file is left either."""
    from snnlib import outcomes
    files = [p for p in (workdir / RUN).rglob("*") if p.is_file()]
    leftovers = [p for p in files if p.name.endswith(".tmp") or p.name.endswith(".lock")]
    for p in files:
        if p in leftovers:
            continue
        if p.suffix == ".pt":
            obj = torch.load(p, map_location="cpu", weights_only=True)
            assert obj.get("format") == "snnlib-checkpoint-v1", p
        elif p.suffix == ".json":
            json.loads(p.read_text())
        elif p.suffix == ".npz":
            outcomes.load(p)
        elif p.suffix == ".csv":
            pd.read_csv(p)
        elif p.suffix == ".png":
            data = p.read_bytes()
            assert data.startswith(b"\x89PNG") and data.endswith(b"IEND\xaeB`\x82"), p
        elif p.suffix == ".svg":
            assert p.read_text().rstrip().endswith("</svg>"), p
    if recovered:
        assert leftovers == []
    else:  # a write killed halfway leaves its `.<name>.XXXXXXXX.tmp` and `<name>.lock` (whose lock died with it);
        # that file's next write removes both
        assert all(re.fullmatch(r"\..+\.[a-z0-9_]{8}\.tmp|.+\.lock", p.name) for p in leftovers), leftovers


def assert_same_results(workdir: Path, reference: Path) -> None:
    got = pd.read_csv(workdir / TARGET).drop(columns=NOT_RESULTS)
    ref = pd.read_csv(reference / TARGET).drop(columns=NOT_RESULTS)
    pd.testing.assert_frame_equal(got, ref, check_exact=True)
    a = torch.load(workdir / TRAIN / "ann.pt", weights_only=True)["model"]
    b = torch.load(reference / TRAIN / "ann.pt", weights_only=True)["model"]
    assert [k for k in b if not torch.equal(a[k], b[k])] == []
    from snnlib.verify import verify  # every cell and every image's prediction at every T
    verdict = verify(workdir / RUN, reference / RUN, tolerance_pp=0.0)
    assert verdict.status == "identical", verdict.text


def finished_copy(reference: Path, tmp_path: Path) -> Path:
    """A copy of the finished undisturbed run (outputs, logs, Snakemake's records, mtimes kept)."""
    work = tmp_path / "work"
    shutil.copytree(reference, work, symlinks=True)
    return work


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("reference") / "work"
    work.mkdir()
    r = snakemake(work)
    assert r.returncode == 0, r.stdout
    assert "resumed" not in (work / TRAIN_LOG).read_text()
    assert_whole(work, recovered=True)
    return work


# ------------------------------------------------------------------------------------------------- kills

def test_job_killed_after_a_mid_epoch_checkpoint_is_retried_from_it(reference, tmp_path):
    """The training job SIGKILLed in epoch 1 (a preempted or OOM-killed job); snakemake's retry resumes."""
    work = tmp_path / "work"
    work.mkdir()
    r = snakemake(work, "--retries", "1", fault="kill:train_state.pt:5")
    assert r.returncode == 0, r.stdout
    assert "train_state.pt" in fired(work) and "Trying to restart job" in r.stdout
    assert f"resumed from {ckpt_rel()} in epoch 1 after batch 5/20" in (work / TRAIN_LOG).read_text()
    assert_whole(work, recovered=True)
    assert_same_results(work, reference)


def test_node_failure_while_a_checkpoint_is_written(reference, tmp_path):
    """snakemake and the job die together halfway through the 25th checkpoint (epoch 2, batch 5): the 24th is
    whole, a torn temporary is left beside it, and the recovered run resumes from the 24th and removes it."""
    work = tmp_path / "work"
    work.mkdir()
    r = snakemake(work, fault="crash:train_state.pt:25")
    assert r.returncode == -signal.SIGKILL, r.stdout
    ckpt = work / ckpt_rel()
    state = torch.load(ckpt, weights_only=True)
    assert (state["epoch"], state["position"]["batch"]) == (1, 4)
    assert len(list(ckpt.parent.glob(".train_state.pt.*.tmp"))) == 1
    assert_whole(work, recovered=False)
    r = recover(work)
    assert r.returncode == 0, r.stdout
    assert f"resumed from {ckpt_rel()} in epoch 2 after batch 4/20" in (work / TRAIN_LOG).read_text()
    assert_whole(work, recovered=True)
    assert_same_results(work, reference)


@pytest.mark.parametrize("stage,file", [("evaluate", "qcfs.npz"), ("aggregate", "results.csv")])
def test_node_failure_during_a_later_stage(reference, tmp_path, stage, file):
    """Training and conversion done, then snakemake and the job die together halfway through the evaluation's
    outcomes or the aggregate's results.csv; `--unlock` + `--rerun-incomplete` redo that stage and what follows."""
    work = finished_copy(reference, tmp_path)
    for p in (work / RUN).iterdir():  # the aggregate's outputs: not made yet
        if p.is_file():
            p.unlink()
    if stage == "evaluate":
        shutil.rmtree(work / RUN / "mnist_lenet" / "seed0" / "eval")
    r = snakemake(work, fault=f"crash:{file}:1")
    assert r.returncode == -signal.SIGKILL, r.stdout
    assert file in fired(work)
    assert_whole(work, recovered=False)
    r = recover(work)
    assert r.returncode == 0, r.stdout
    assert f"rule {stage}:" in r.stdout and "rule train:" not in r.stdout and "rule convert:" not in r.stdout
    assert_whole(work, recovered=True)
    assert_same_results(work, reference)


# --------------------------------------------------------------------------------------------- full disk

def test_disk_full_at_a_checkpoint_fails_the_job_cleanly_and_the_rerun_resumes(reference, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    r = snakemake(work, fault="enospc:train_state.pt:25")
    assert r.returncode == 1, r.stdout
    log = (work / TRAIN_LOG).read_text()
    assert re.search(rf"^error: no space left writing \S*{re.escape(str(ckpt_rel()))}; free \d+ MB and rerun$", log,
                     re.M), log
    assert "Traceback" not in log
    assert_whole(work, recovered=True)  # the failed write removed its temporary
    r = snakemake(work)
    assert r.returncode == 0, r.stdout
    assert f"resumed from {ckpt_rel()} in epoch 2 after batch 4/20" in (work / TRAIN_LOG).read_text()
    assert_whole(work, recovered=True)
    assert_same_results(work, reference)


def test_disk_full_at_the_training_report_keeps_the_training(reference, tmp_path):
    """The disk fills after the last epoch, at ann.json: Snakemake deletes the job's other outputs, and the
    rerun only scores the trained network again."""
    work = tmp_path / "work"
    work.mkdir()
    r = snakemake(work, fault="enospc:ann.json:1")
    assert r.returncode == 1, r.stdout
    assert "error: no space left writing" in (work / TRAIN_LOG).read_text()
    assert not (work / TRAIN / "ann.pt").exists()
    r = snakemake(work)
    assert r.returncode == 0, r.stdout
    log = (work / TRAIN_LOG).read_text()
    assert f"resumed from {ckpt_rel()} after epoch 2" in log and "epoch 1/2" not in log
    assert_whole(work, recovered=True)
    assert_same_results(work, reference)


def test_a_real_full_disk_mid_training(reference, tmp_path):
    """The run on a small tmpfs that is filled up while the network trains: the job, and Snakemake's own records,
    hit ENOSPC wherever they write next. Freeing the space and the documented recovery finish the run."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(disk)], capture_output=True,
                             text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        work = disk / "work"
        work.mkdir()
        ckpt = work / ckpt_rel()
        proc, log = snakemake(work, wait=False, logdir=tmp_path)
        deadline = time.monotonic() + LIMIT_S
        while not ckpt.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        filler = disk / "filler"
        with open(filler, "wb", buffering=0) as f:
            for chunk in (2**20, 2**12):
                try:
                    while True:
                        f.write(b"\0" * chunk)
                except OSError:
                    pass
        r = finish(proc, log)
        assert r.returncode != 0, r.stdout
        where = r.stdout + (work / TRAIN_LOG).read_text() if (work / TRAIN_LOG).exists() else r.stdout
        assert "No space left" in where or "no space left" in where, where
        assert_whole(work, recovered=False)
        filler.unlink()
        r = recover(work, logdir=tmp_path)
        assert r.returncode == 0, r.stdout
        assert_whole(work, recovered=True)
        assert_same_results(work, reference)
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


# --------------------------------------------------------------------------------------------- damaged files

def test_truncated_training_checkpoint_is_refused_then_moved_away(reference, tmp_path):
    """A node failure in epoch 2, and the surviving checkpoint is then cut short (a bad copy, a damaged disk):
    the rerun stops with the one-line error, leaves the file as it is, and after its fix (move it away) trains
    from epoch 0 to the same weights."""
    work = tmp_path / "work"
    work.mkdir()
    r = snakemake(work, fault="crash:train_state.pt:30")
    assert r.returncode == -signal.SIGKILL, r.stdout
    ckpt = work / ckpt_rel()
    ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    damaged = ckpt.read_bytes()
    r = recover(work)
    assert r.returncode == 1, r.stdout
    log = (work / TRAIN_LOG).read_text()
    assert re.search(r"^error: \S+train_state.pt is not a readable training checkpoint: it is damaged, truncated or "
                     r"not a torch file .*Move it away to train from epoch 0.*it has been left as it is\.$", log,
                     re.M), log
    assert ckpt.read_bytes() == damaged
    shutil.move(ckpt, tmp_path / "moved_away.pt")  # the error's fix
    r = snakemake(work, "--rerun-incomplete")
    assert r.returncode == 0, r.stdout
    assert "resumed" not in (work / TRAIN_LOG).read_text()
    assert_whole(work, recovered=True)
    assert_same_results(work, reference)


@pytest.mark.parametrize("damage", ["garbage_in_eval_report", "truncated_eval_outcomes", "truncated_ann"])
def test_damaged_artefact_of_a_finished_run_is_named_and_remade(reference, tmp_path, damage):
    """A finished run's file damaged by hand: the rerun (Snakemake sees a newer file) stops at the first job that
    reads it with one line naming it and the fix, `--forcerun <file>`, which remakes it and what depends on it.
    (Deleting it would not do: Snakemake does not remake a missing file whose consumers are up to date.)"""
    work = finished_copy(reference, tmp_path)
    path, what, log = {
        "garbage_in_eval_report": (RUN / "mnist_lenet/seed0/eval/qcfs.json", "is not a readable stage report .*; "
                                   "remake it with", "logs/faults/aggregate.log"),
        "truncated_eval_outcomes": (RUN / "mnist_lenet/seed0/eval/qcfs.npz", "is not a readable outcomes file .*; "
                                    "remake it with", "logs/faults/aggregate.log"),
        "truncated_ann": (TRAIN / "ann.pt", "is not a readable model checkpoint: .* Remake it with",
                          "logs/faults/convert/mnist_lenet_seed0_qcfs.log"),
    }[damage]
    target = work / path
    data = target.read_bytes()
    target.write_bytes(b"\x00garbage{" * 20 if damage.startswith("garbage") else data[: len(data) // 3])
    r = snakemake(work)
    assert r.returncode == 1, r.stdout
    text = (work / log).read_text()
    fix = f"`snakemake --forcerun {path}`"
    assert re.search(rf"^error: {re.escape(str(path))} {what} {re.escape(fix)}", text, re.M), text
    assert "Traceback" not in text
    r = snakemake(work, "--forcerun", str(path))  # the fix
    assert r.returncode == 0, r.stdout
    assert_whole(work, recovered=True)
    assert_same_results(work, reference)
