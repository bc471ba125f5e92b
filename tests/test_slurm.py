"""The DAG on a real SLURM scheduler: workflow/scripts/slurm_ci.sh brings up a single-node cluster (Debian's
slurm-wlm + munge, localhost only), runs a config through `--executor slurm` with profiles/slurm, and tears the
cluster down. `smoke`: config/smoke.yaml, every non-local job went through sbatch and COMPLETED. `faults`: a
training under a time limit shorter than its epoch, and one SIGKILLed, cancelled and requeued mid-epoch, finish on
resubmission from their mid-epoch checkpoints, and the rows equal an undisturbed training's.

Marked `slurm`. It runs wherever the machine can host the cluster (root, and the packages installed or installable
with apt-get); elsewhere it is skipped with the reason. About 1.5 minutes (smoke) and 6 minutes (faults), bounded
by hard timeouts.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "workflow" / "scripts" / "slurm_ci.sh"
SLURM_DAEMONS = {"slurmctld", "slurmd", "slurmstepd"}
CANNOT = 3  # slurm_ci.sh: this machine cannot host the cluster
INSTALL_LIMIT_S = 660  # apt-get update + install, 300 s each inside the script
SMOKE_LIMIT_S = 420  # the whole script; snakemake inside it has its own 300 s limit
DOWN_LIMIT_S = 120


def running(names: set[str]) -> list[str]:
    """'pid name' of every process called one of `names` (read from /proc: procps may be missing)."""
    found = []
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            name = comm.read_text().strip()
        except OSError:
            continue
        if name in names:
            found.append(f"{comm.parent.name} {name}")
    return found


def run_script(command: str, env: dict, limit_s: int) -> subprocess.CompletedProcess:
    """Run slurm_ci.sh in its own process group; past `limit_s` the whole group is SIGKILLed."""
    proc = subprocess.Popen(["bash", str(SCRIPT), command], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=limit_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        out += f"\n[test] slurm_ci.sh {command} killed after {limit_s} s"
    return subprocess.CompletedProcess(proc.args, proc.returncode, out)


def run_on_cluster(tmp_path, command: str, limit_s: int) -> tuple[subprocess.CompletedProcess, Path]:
    """Install (or skip), then `slurm_ci.sh <command>` (it brings the cluster up and down), then `down` again in
    case the script itself was killed; checks that no daemon is left. Returns the script's output and its workdir."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("the local SLURM cluster needs root (it writes /etc/slurm/slurm.conf and starts daemons)")
    if shutil.which("sbatch") is None and shutil.which("apt-get") is None:
        pytest.skip("SLURM is not installed and there is no apt-get to install it (not a Debian-like machine)")
    # SLURM_CI_DIR keeps its short default: slurmd puts unix sockets there, and their paths must stay < 108 bytes
    work = tmp_path / "work"
    env = {**os.environ, "SLURM_CI_WORKDIR": str(work)}
    installed = run_script("install", env, INSTALL_LIMIT_S)
    if installed.returncode == CANNOT:
        pytest.skip(installed.stdout.strip().splitlines()[-1])
    assert installed.returncode == 0, installed.stdout
    if running(SLURM_DAEMONS):
        pytest.skip(f"SLURM daemons already run on this machine ({running(SLURM_DAEMONS)}); not touching them")
    munged_before = bool(running({"munged"}))

    try:
        result = run_script(command, env, limit_s)
    finally:
        # The script's exit handler tears down; if the script itself was killed, this does it. Idempotent.
        down = run_script("down", env, DOWN_LIMIT_S)
    print(result.stdout)
    print(down.stdout)
    if result.returncode == CANNOT:
        pytest.skip(next(line for line in result.stdout.splitlines() if "cannot run here" in line))

    left = running(SLURM_DAEMONS | (set() if munged_before else {"munged"}))
    assert not left, f"processes left behind: {left}"
    assert down.returncode == 0, down.stdout
    return result, work


JOB_LINE = re.compile(r"^slurm job (\d+): rule_([a-z_]+?)_wildcards(\S*) (\w+) exit=(\S+)", re.M)


@pytest.mark.slurm
@pytest.mark.timeout(INSTALL_LIMIT_S + SMOKE_LIMIT_S + DOWN_LIMIT_S + 60)
def test_smoke_dag_runs_through_sbatch(tmp_path):
    smoke, work = run_on_cluster(tmp_path, "smoke", SMOKE_LIMIT_S)
    assert smoke.returncode == 0, smoke.stdout

    jobs = JOB_LINE.findall(smoke.stdout)
    rules = sorted(rule for _, rule, _, _, _ in jobs)
    for rule in ("train", "convert", "evaluate", "evaluate"):  # config/smoke.yaml: one run, methods qcfs and srp
        assert rule in rules
        rules.remove(rule)
    assert all(state == "COMPLETED" and code == "0:0" for _, _, _, state, code in jobs), jobs
    assert "aggregate" not in {rule for _, rule, _, _, _ in jobs}, "aggregate is a local rule"
    log = (work / "snakemake.log").read_text()
    assert log.count("has been submitted with SLURM jobid") == len(jobs)
    assert (work / "runs" / "smoke" / "table.md").is_file()


FAULTS_LIMIT_S = 600 + 120  # snakemake's own limit in slurm_ci.sh, cluster up and the checks
# columns that are no result: how long the jobs took and when (the rest, provenance included, must be equal)
NOT_RESULTS = ["train_wall_s", "train_epoch_s", "eval_wall_s", "timestamp"]
EPOCHS = 1  # tests/configs/slurm_faults.yaml


@pytest.mark.slurm
@pytest.mark.timeout(INSTALL_LIMIT_S + FAULTS_LIMIT_S + DOWN_LIMIT_S + 60)
def test_time_limited_killed_cancelled_and_requeued_trainings_resume_mid_epoch(tmp_path):
    """tests/configs/slurm_faults.yaml through sbatch (slurm_ci.sh faults): three experiments with the same settings.
    `limited` trains one epoch under a 1-minute time limit, shorter than the epoch. `killed` has its training process
    SIGKILLed, its resubmission cancelled with scancel, and the next one requeued by SLURM, each a few seconds after
    a time-budget checkpoint. `undisturbed` is left alone. Each stopped job goes on, with the same limit, from where
    it saved, and the rows of all three are identical."""
    faults, work = run_on_cluster(tmp_path, "faults", FAULTS_LIMIT_S)
    assert faults.returncode == 0, faults.stdout
    train = {}
    for _, rule, wildcards, state, code in JOB_LINE.findall(faults.stdout):
        if rule == "train":
            train.setdefault(wildcards.split("_")[1], []).append((state, code))
        else:
            assert (state, code) == ("COMPLETED", "0:0"), (rule, wildcards, state, code)
    limited, killed, undisturbed = train["limited"], train["killed"], train["undisturbed"]
    assert undisturbed == [("COMPLETED", "0:0")]
    # limited: stopped by the time limit at least once (a longer epoch than the limit), then finished within it
    assert limited[-1] == ("COMPLETED", "0:0") and limited[:-1] and {s for s, _ in limited[:-1]} == {"TIMEOUT"}
    # killed: its process SIGKILLed (the job fails), then cancelled, then requeued once under the same id
    assert [s for s, _ in killed] == ["FAILED", "CANCELLED", "COMPLETED"], killed
    assert re.search(r"^slurm job \d+: rule_train_wildcards_killed_0_qcfs COMPLETED .* restarts=1$", faults.stdout,
                     re.M), faults.stdout

    attempts = work / "attempts"  # every attempt's train log, one after the other (slurm_ci.sh keeps them)
    log = (attempts / "limited.log").read_text()
    stops = re.findall(r"^stopped: SIGTERM: training stopped (in epoch \d+ after batch (\d+)/(\d+)), checkpoint "
                       r"saved to \S+; run the same command again to resume from there$", log, re.M)
    resumes = re.findall(r"^resumed from \S+ (in epoch \d+ after batch \d+/\d+|after epoch \d+)$", log, re.M)
    # every resubmission resumed, each stop mid-epoch from the batch it saved at (a SIGTERM after the training loop
    # is plain death: the last epoch's checkpoint is saved, only the ANN's accuracy is redone)
    assert stops and len(resumes) == len(limited) - 1, log
    assert all(0 < int(b) < int(n) and where in resumes for where, b, n in stops), log
    assert len(re.findall(r"^epoch \d+/\d+ loss", log, re.M)) == EPOCHS, "an epoch was trained twice"

    log = (attempts / "killed.log").read_text()
    parts = log.split("resumed from ")  # the SIGKILLed attempt, the cancelled one, the requeued one, the last
    assert len(parts) == 4, log
    assert "stopped:" not in parts[0], "a SIGKILL gives no chance to save"
    saved = re.findall(r"^checkpoint saved (in epoch \d+ after batch \d+/\d+)$", parts[0], re.M)
    assert saved and re.match(rf"\S+ {saved[-1]}$", parts[1], re.M), log  # from the last one before the kill
    for before, after in zip(parts[1:], parts[2:]):  # scancel and requeue: SIGTERM, saved there, resumed there
        stop = re.search(r"^stopped: SIGTERM: training stopped (in epoch \d+ after batch \d+/\d+), ", before, re.M)
        assert stop and re.match(rf"\S+ {stop[1]}$", after, re.M), log
    assert len(re.findall(r"^epoch \d+/\d+ loss", log, re.M)) == EPOCHS, "an epoch was trained twice"

    import pandas as pd
    rows = pd.read_csv(work / "runs" / "slurm_faults" / "results.csv").drop(columns=NOT_RESULTS)
    ref = rows[rows.experiment == "undisturbed"].drop(columns="experiment").reset_index(drop=True)
    for exp in ("limited", "killed"):
        got = rows[rows.experiment == exp].drop(columns="experiment").reset_index(drop=True)
        pd.testing.assert_frame_equal(got, ref, check_exact=True)


def test_faults_check_reads_messages_without_the_logging_prefix():
    """slurm_ci.sh keeps each training attempt's lines with the logging prefix cut off, and its checks (and the one
    above) match bare messages: its prefix pattern must match what snnlib/progress.py writes, or nothing matches."""
    import io
    import logging

    from snnlib import progress

    pattern = re.search(r"^LOG_PREFIX='([^']+)'", SCRIPT.read_text(), re.M)[1]
    stream = io.StringIO()
    handler = progress.configure(stream=stream)
    try:
        logging.getLogger("snnlib.training").info("checkpoint saved in epoch 1 after batch 3/5")
        logging.getLogger("snnlib.methods.cq.training").warning("resumed from x in epoch 1 after batch 3/5")
    finally:
        logging.getLogger("snnlib").removeHandler(handler)
    bare = [re.sub(pattern, "", line) for line in stream.getvalue().splitlines()]
    assert bare == ["checkpoint saved in epoch 1 after batch 3/5", "resumed from x in epoch 1 after batch 3/5"]
