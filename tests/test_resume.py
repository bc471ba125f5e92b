"""Resume after kill or preemption (issue: cluster submission and resume).

Training writes an atomic checkpoint at the end of every epoch (snnlib.checkpoint). These tests SIGKILL the real
command line (`python -m snnlib train`, tests/configs/tiny.yaml: LeNet, 6,000 MNIST images, 3 epochs, one CPU
thread) mid-epoch and at the end, rerun it, and require the final weights to equal an uninterrupted run's bit for
bit; a SIGTERM (SLURM's time limit, preemption, scancel) saves at the next batch and the rerun resumes there, and a
SIGKILL after a mid-epoch checkpoint (train.checkpoint_every_s) resumes from that one. They do the same through Snakemake: a killed job retried by `--retries` (what a preempted SLURM job gets), and
a rerun after `snakemake` itself was killed. A corrupt or foreign checkpoint must stop training with a clear error
and stay on disk untouched.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from snnlib import checkpoint
from snnlib.checkpoint import CheckpointError

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "tests" / "configs" / "tiny.yaml"
EXP, SEED, EPOCHS = "mnist_lenet", 0, 3
TRAIN_REL = Path("runs/tiny/mnist_lenet/seed0/qcfs")  # where the Snakefile puts this run, under its workdir
WAIT_S = 120  # the longest any single step below may take before the test gives up


def ckpt_rel() -> Path:
    """Training checkpoints sit in a folder named after the recipe's training hash (snnlib.stages.checkpoint_dir)."""
    from snnlib.config import load_config, training_hash
    return Path("ckpt") / training_hash(load_config(TINY)["experiments"][EXP], "qcfs") / "train_state.pt"

pytestmark = pytest.mark.data


@pytest.fixture(scope="module", autouse=True)
def _needs_mnist():
    from snnlib.config import load_config
    from snnlib.data import DatasetNotFoundError, load_split
    from snnlib.experiment_data import data_root
    try:
        load_split("mnist", "test", data_root(load_config(TINY)))
    except DatasetNotFoundError as e:
        pytest.skip(f"MNIST is not prepared ({e}); run scripts/fetch_data.sh")


def train_cmd(out_dir: Path) -> list[str]:
    return [sys.executable, "-m", "snnlib", "train", "--config", str(TINY), "--experiment", EXP, "--seed", str(SEED),
            "--threads", "1", "--device", "cpu", "--recipe", "qcfs", "--out", str(out_dir / "ann.pt"),
            "--report", str(out_dir / "ann.json"), "--outcomes", str(out_dir / "ann_outcomes.npz")]


def ckpt_epoch(ckpt: Path) -> int:
    """Epoch of the training checkpoint on disk, 0 if there is none (a rename makes every read see a whole file)."""
    if not ckpt.exists():
        return 0
    return torch.load(ckpt, map_location="cpu", weights_only=True)["epoch"]


def wait_until(condition, what: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"process ended (rc {proc.returncode}) before {what}:\n{log.read_text()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"timed out waiting for {what}:\n{log.read_text()}")
        time.sleep(0.02)


def epoch_seconds(log: Path) -> float:
    """Duration of the last finished epoch, from the training log line `<time> INFO snnlib.training: epoch k/N loss
    ... (1.9s, ...) ...` (progress lines inside an epoch read `epoch k/N: batch ...`)."""
    return float(re.findall(r"\bepoch \d+/\d+ loss .*?\(([\d.]+)s\b", log.read_text())[-1])


def kill_mid_epoch(proc: subprocess.Popen, log: Path, ckpt: Path, after_epoch: int) -> None:
    """SIGKILL `proc` a third of the way into the epoch after checkpoint `after_epoch`, and check that it was."""
    wait_until(lambda: ckpt_epoch(ckpt) == after_epoch, f"the epoch-{after_epoch} checkpoint", proc, log)
    if after_epoch < EPOCHS:
        time.sleep(0.3 * epoch_seconds(log))
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=WAIT_S)
    assert proc.returncode == -signal.SIGKILL
    assert ckpt_epoch(ckpt) == after_epoch
    assert f"epoch {after_epoch + 1}/{EPOCHS} loss" not in log.read_text(), \
        "killed too late: the next epoch had finished"


def model_state(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


def assert_bitwise_equal(a: Path, b: Path) -> None:
    sa, sb = model_state(a), model_state(b)
    assert sa.keys() == sb.keys()
    differ = [k for k in sa if not torch.equal(sa[k], sb[k])]
    assert not differ, f"tensors differ from the uninterrupted run: {differ}"


def descendants(pid: int) -> list[int]:
    """PIDs below `pid` in the process tree, from /proc."""
    parent = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
    found, frontier = [], {pid}
    while frontier:
        frontier = {c for c, p in parent.items() if p in frontier}
        found += sorted(frontier)
    return found


def argv(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    except OSError:
        return []


def is_training(pid: int) -> bool:
    """The `python -m snnlib train` process itself, not the shell Snakemake wraps around it."""
    return argv(pid)[1:4] == ["-m", "snnlib", "train"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    """ann.pt of the run nobody interrupts."""
    out = tmp_path_factory.mktemp("uninterrupted")
    r = subprocess.run(train_cmd(out), capture_output=True, text=True, timeout=WAIT_S * 2)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "resumed" not in r.stdout + r.stderr  # the log lines go to stderr
    return out / "ann.pt"


@pytest.mark.slow
def test_sigkill_mid_epoch_then_rerun_gives_identical_weights(uninterrupted, tmp_path):
    ckpt = tmp_path / ckpt_rel()
    logs = []
    # Killed a third into epoch 2, a third into epoch 3, and after the last checkpoint (while the test set is
    # scored), then run to the end: four processes make the weights of one run.
    for after_epoch in (1, 2, EPOCHS):
        log = tmp_path / f"killed_after_epoch{after_epoch}.log"
        with open(log, "w") as f:
            proc = subprocess.Popen(train_cmd(tmp_path), stdout=f, stderr=subprocess.STDOUT)
            try:
                kill_mid_epoch(proc, log, ckpt, after_epoch)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        logs.append(log.read_text())
        if after_epoch < EPOCHS:
            assert not (tmp_path / "ann.pt").exists()
    r = subprocess.run(train_cmd(tmp_path), capture_output=True, text=True, timeout=WAIT_S * 2)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"resumed from {ckpt} after epoch 1" in logs[1]
    assert f"resumed from {ckpt} after epoch 2" in logs[2]
    assert f"resumed from {ckpt} after epoch {EPOCHS}" in r.stderr  # the log lines go to stderr
    assert "epoch " + f"{EPOCHS}/{EPOCHS}" not in r.stderr  # nothing left to train
    assert_bitwise_equal(tmp_path / "ann.pt", uninterrupted)
    # The report's history is the checkpoint's: identical losses and learning rates, epoch by epoch.
    import json
    ref = json.loads(uninterrupted.with_name("ann.json").read_text())["history"]
    got = json.loads((tmp_path / "ann.json").read_text())["history"]
    strip = lambda h: [{k: v for k, v in row.items() if k != "seconds"} for row in h]  # noqa: E731
    assert strip(got) == strip(ref)


def ckpt_position(ckpt: Path) -> dict | None:
    """The mid-epoch position of the checkpoint on disk (None: none, or saved at an epoch end)."""
    if not ckpt.exists():
        return None
    return torch.load(ckpt, map_location="cpu", weights_only=True).get("position")


@pytest.mark.slow
def test_sigterm_mid_epoch_saves_there_exits_143_and_resumes_bit_identical(uninterrupted, tmp_path):
    """What SLURM does at a time limit, on preemption and on scancel: SIGTERM, then SIGKILL KillWait seconds later.
    The training saves at the next batch boundary and stops; the rerun continues from that batch."""
    ckpt = tmp_path / ckpt_rel()
    log = tmp_path / "sigterm.log"
    with open(log, "w") as f:
        proc = subprocess.Popen(train_cmd(tmp_path), stdout=f, stderr=subprocess.STDOUT)
        try:
            wait_until(lambda: ckpt_epoch(ckpt) == 1, "the epoch-1 checkpoint", proc, log)
            time.sleep(0.4 * epoch_seconds(log))
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=WAIT_S)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    out = log.read_text()
    assert proc.returncode == 143, out
    stopped = re.search(r"^stopped: SIGTERM: training stopped in epoch 2 after batch (\d+)/94, checkpoint saved to "
                        + re.escape(str(ckpt)) + "; run the same command again to resume from there$", out, re.M)
    assert stopped, out
    batch = int(stopped.group(1))
    assert 0 < batch < 94 and "Traceback" not in out
    assert ckpt_epoch(ckpt) == 1 and ckpt_position(ckpt)["batch"] == batch
    assert not (tmp_path / "ann.pt").exists()
    rerun_resumes_mid_epoch(tmp_path, ckpt, batch, uninterrupted)


def rerun_resumes_mid_epoch(tmp_path, ckpt, batch: int, uninterrupted) -> None:
    """The same training command again: it resumes in epoch 2 after `batch` and ends with the uninterrupted
    run's weights, bit for bit."""
    r = subprocess.run(train_cmd(tmp_path), capture_output=True, text=True, timeout=WAIT_S * 2)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"resumed from {ckpt} in epoch 2 after batch {batch}/94" in r.stderr  # the log lines go to stderr
    assert_bitwise_equal(tmp_path / "ann.pt", uninterrupted)


@pytest.mark.slow
def test_sigkill_after_a_mid_epoch_checkpoint_resumes_from_it_bit_identical(uninterrupted, tmp_path):
    """A SIGKILL (node failure, OOM kill) gives no chance to save: the loss is bounded by train.checkpoint_every_s.
    The interval is no part of the recipe's hash: the killed run saves twice a second, the rerun every 600 s, and
    both use the same checkpoint folder."""
    import yaml
    often = tmp_path / "tiny_often.yaml"
    raw = yaml.safe_load(TINY.read_text())
    raw["experiments"][EXP]["train"]["checkpoint_every_s"] = 0.5
    often.write_text(yaml.safe_dump(raw))
    ckpt = tmp_path / ckpt_rel()
    log = tmp_path / "sigkill.log"
    cmd = train_cmd(tmp_path)
    cmd[cmd.index(str(TINY))] = str(often)
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT)
        try:
            wait_until(lambda: ckpt_epoch(ckpt) == 1 and ckpt_position(ckpt) is not None,
                       "a mid-epoch checkpoint in epoch 2", proc, log)
            time.sleep(0.3)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=WAIT_S)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert ckpt_epoch(ckpt) == 1, "killed too late"
    batch = ckpt_position(ckpt)["batch"]
    rerun_resumes_mid_epoch(tmp_path, ckpt, batch, uninterrupted)
    import json
    ref = json.loads(uninterrupted.with_name("ann.json").read_text())["history"]
    got = json.loads((tmp_path / "ann.json").read_text())["history"]
    strip = lambda h: [{k: v for k, v in row.items() if k not in ("seconds", "job")} for row in h]  # noqa: E731
    assert strip(got) == strip(ref)  # the interrupted epoch's loss and accuracy sums were resumed too


def snakemake_cmd(workdir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
            "--configfile", str(TINY), "--cores", "2", "--set-threads", "train=1", "--nocolor", *extra,
            str(TRAIN_REL / "ann.json")]


@pytest.mark.slow
def test_snakemake_retry_after_a_killed_job_resumes(uninterrupted, tmp_path):
    """A preempted or killed job: Snakemake deletes its incomplete outputs, `--retries` reruns it, and the rerun
    resumes from the checkpoint, which is no declared output and so survives."""
    ckpt = tmp_path / TRAIN_REL / ckpt_rel()
    job_log = tmp_path / "logs" / "tiny" / "train" / f"{EXP}_seed{SEED}_qcfs.log"
    smk_log = tmp_path / "snakemake.out"
    with open(smk_log, "w") as f:
        smk = subprocess.Popen(snakemake_cmd(tmp_path, "--retries", "1"), stdout=f, stderr=subprocess.STDOUT,
                               start_new_session=True)
        try:
            wait_until(lambda: ckpt_epoch(ckpt) == 1, "the epoch-1 checkpoint", smk, smk_log)
            time.sleep(0.3 * epoch_seconds(job_log))
            jobs = [p for p in descendants(smk.pid) if is_training(p)]
            assert len(jobs) == 1, [argv(p) for p in descendants(smk.pid)]
            os.kill(jobs[0], signal.SIGKILL)  # the job dies as under preemption; Snakemake lives on
            smk.wait(timeout=WAIT_S * 2)
        finally:
            if smk.poll() is None:
                os.killpg(smk.pid, signal.SIGKILL)
                smk.wait()
    out = smk_log.read_text()
    assert smk.returncode == 0, out
    assert "Trying to restart job" in out
    assert f"resumed from {ckpt.relative_to(tmp_path)} after epoch 1" in job_log.read_text()
    assert_bitwise_equal(tmp_path / TRAIN_REL / "ann.pt", uninterrupted)


@pytest.mark.slow
def test_rerun_after_snakemake_itself_was_killed_resumes(uninterrupted, tmp_path):
    """`snakemake` and its job SIGKILLed together (a killed login session, an OOM kill): the documented recovery,
    `--unlock` then a rerun with `--rerun-incomplete`, resumes the training from its last checkpoint."""
    ckpt = tmp_path / TRAIN_REL / ckpt_rel()
    job_log = tmp_path / "logs" / "tiny" / "train" / f"{EXP}_seed{SEED}_qcfs.log"
    smk_log = tmp_path / "snakemake.out"
    with open(smk_log, "w") as f:
        smk = subprocess.Popen(snakemake_cmd(tmp_path), stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_until(lambda: ckpt_epoch(ckpt) == 1, "the epoch-1 checkpoint", smk, smk_log)
            time.sleep(0.3 * epoch_seconds(job_log))
            tree = descendants(smk.pid)
        finally:
            for pid in [smk.pid, *tree]:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            smk.wait()
    assert not [p for p in tree if is_training(p)], "the training job outlived the kill"
    assert ckpt_epoch(ckpt) == 1
    unlock = subprocess.run(snakemake_cmd(tmp_path, "--unlock"), capture_output=True, text=True, timeout=WAIT_S)
    assert unlock.returncode == 0, unlock.stdout + unlock.stderr
    rerun = subprocess.run(snakemake_cmd(tmp_path, "--rerun-incomplete"), capture_output=True, text=True,
                           timeout=WAIT_S * 2)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert f"resumed from {ckpt.relative_to(tmp_path)} after epoch 1" in job_log.read_text()
    assert_bitwise_equal(tmp_path / TRAIN_REL / "ann.pt", uninterrupted)


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["garbage", "truncated", "foreign_state_dict", "foreign_pickle"])
def test_bad_checkpoint_stops_training_with_a_clear_error_and_is_kept(uninterrupted, tmp_path, damage):
    ckpt = tmp_path / ckpt_rel()
    ckpt.parent.mkdir(parents=True)
    if damage == "garbage":
        ckpt.write_bytes(b"this is not a checkpoint\n" * 10)
    elif damage == "truncated":  # a copy cut short, e.g. by a full disk (the atomic rename prevents it in place)
        whole = uninterrupted.parent / ckpt_rel()
        ckpt.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    elif damage == "foreign_state_dict":  # someone else's torch file: a bare state_dict
        torch.save(nn.Linear(2, 2).state_dict(), ckpt)
    else:  # a pickle of arbitrary objects, which weights_only=True refuses to unpickle
        import argparse
        torch.save({"format": checkpoint.FORMAT, "kind": "training", "args": argparse.Namespace(a=1)}, ckpt)
    before = ckpt.read_bytes()
    r = subprocess.run(train_cmd(tmp_path), capture_output=True, text=True, timeout=WAIT_S)
    assert r.returncode == 1, r.stdout + r.stderr
    expected = {"garbage": "is not a readable training checkpoint: it is damaged, truncated or not a torch file",
                "truncated": "is not a readable training checkpoint: it is damaged, truncated or not a torch file "
                             "(RuntimeError: PytorchStreamReader failed reading zip archive",
                "foreign_state_dict": "is not an snnlib training checkpoint",
                "foreign_pickle": ": refused: contains code, not weights (a file from an untrusted source?); "
                                  "delete it and rerun the job that makes it"}[damage]
    sep = "" if damage == "foreign_pickle" else " "
    assert f"error: {ckpt}{sep}{expected}" in r.stderr
    assert "it has been left as it is" in r.stderr
    assert "weights_only` set to `False`" not in r.stderr  # torch's advice, never the fix for a foreign file
    assert "Traceback" not in r.stderr
    assert "epoch 1/" not in r.stdout + r.stderr
    assert ckpt.read_bytes() == before, "the checkpoint was overwritten"
    assert not (tmp_path / "ann.pt").exists()


def _small_run(seed: int = 0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=3)
    return model, opt, sched, torch.Generator().manual_seed(seed)


def test_checkpoint_of_another_configuration_or_model_is_refused(tmp_path):
    ckpt = tmp_path / "train_state.pt"
    model, opt, sched, gen = _small_run()
    checkpoint.save_training_state(ckpt, model, opt, sched, gen, 1, [], fingerprint="recipe-a")
    with pytest.raises(CheckpointError, match="another configuration"):
        checkpoint.load_training_state(ckpt, *_small_run(), fingerprint="recipe-b")
    other = nn.Sequential(nn.Linear(5, 3))
    other_opt = torch.optim.SGD(other.parameters(), lr=0.1)
    with pytest.raises(CheckpointError, match="does not fit"):
        checkpoint.load_training_state(ckpt, other, other_opt,
                                       torch.optim.lr_scheduler.CosineAnnealingLR(other_opt, T_max=3),
                                       torch.Generator(), fingerprint="recipe-a")
    state = torch.load(ckpt, weights_only=True)
    del state["generator"]
    torch.save(state, ckpt)
    with pytest.raises(CheckpointError, match="lacks generator"):
        checkpoint.load_training_state(ckpt, *_small_run(), fingerprint="recipe-a")


def test_a_kill_during_the_checkpoint_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    ckpt = tmp_path / "train_state.pt"
    model, opt, sched, gen = _small_run()
    checkpoint.save_training_state(ckpt, model, opt, sched, gen, 1, [{"epoch": 1}])
    from snnlib import atomic
    real_write_all = atomic._write_all

    def dies_halfway(fd, data):  # the process is interrupted after writing half of the temporary file
        real_write_all(fd, bytes(data)[: len(data) // 2])
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(atomic, "_write_all", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save_training_state(ckpt, model, opt, sched, gen, 2, [{"epoch": 1}, {"epoch": 2}])
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train_state.pt"]  # no temporary, no lock left
    assert checkpoint.load_training_state(ckpt, *_small_run())["epoch"] == 1
    (tmp_path / ".train_state.pt.k1ll3d00.tmp").write_bytes(b"half")  # what a SIGKILL leaves behind
    checkpoint.save_training_state(ckpt, model, opt, sched, gen, 2, [])  # ... and the next save removes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train_state.pt"]
    assert checkpoint.load_training_state(ckpt, *_small_run())["epoch"] == 2
