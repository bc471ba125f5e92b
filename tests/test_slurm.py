"""The smoke DAG on a real SLURM scheduler: workflow/scripts/slurm_ci.sh brings up a single-node cluster (Debian's
slurm-wlm + munge, localhost only), runs config/smoke.yaml through `--executor slurm` with profiles/slurm, checks that
every non-local job went through sbatch and COMPLETED, and tears the cluster down.

Marked `slurm`. It runs wherever the machine can host the cluster (root, and the packages installed or installable
with apt-get); elsewhere it is skipped with the reason. About 1.5 minutes, bounded by hard timeouts.
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


@pytest.mark.slurm
@pytest.mark.timeout(INSTALL_LIMIT_S + SMOKE_LIMIT_S + DOWN_LIMIT_S + 60)
def test_smoke_dag_runs_through_sbatch(tmp_path):
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("the local SLURM cluster needs root (it writes /etc/slurm/slurm.conf and starts daemons)")
    if shutil.which("sbatch") is None and shutil.which("apt-get") is None:
        pytest.skip("SLURM is not installed and there is no apt-get to install it (not a Debian-like machine)")
    # SLURM_CI_DIR keeps its short default: slurmd puts unix sockets there, and their paths must stay < 108 bytes
    env = {**os.environ, "SLURM_CI_WORKDIR": str(tmp_path / "work")}
    installed = run_script("install", env, INSTALL_LIMIT_S)
    if installed.returncode == CANNOT:
        pytest.skip(installed.stdout.strip().splitlines()[-1])
    assert installed.returncode == 0, installed.stdout
    if running(SLURM_DAEMONS):
        pytest.skip(f"SLURM daemons already run on this machine ({running(SLURM_DAEMONS)}); not touching them")
    munged_before = bool(running({"munged"}))

    try:
        smoke = run_script("smoke", env, SMOKE_LIMIT_S)
    finally:
        # The script's exit handler tears down; if the script itself was killed, this does it. Idempotent.
        down = run_script("down", env, DOWN_LIMIT_S)
    print(smoke.stdout)
    print(down.stdout)
    if smoke.returncode == CANNOT:
        pytest.skip(next(line for line in smoke.stdout.splitlines() if "cannot run here" in line))

    left = running(SLURM_DAEMONS | (set() if munged_before else {"munged"}))
    assert not left, f"processes left behind: {left}"
    assert down.returncode == 0, down.stdout
    assert smoke.returncode == 0, smoke.stdout

    jobs = re.findall(r"^slurm job (\d+): rule_([a-z_]+?)_wildcards\S* (\w+) exit=(\S+)", smoke.stdout, re.M)
    rules = sorted(rule for _, rule, _, _ in jobs)
    for rule in ("train", "convert", "evaluate", "evaluate"):  # config/smoke.yaml: one run, methods qcfs and srp
        assert rule in rules
        rules.remove(rule)
    assert all(state == "COMPLETED" and code == "0:0" for _, _, state, code in jobs), jobs
    assert "aggregate" not in {rule for _, rule, _, _ in jobs}, "aggregate is a local rule"
    log = (tmp_path / "work" / "snakemake.log").read_text()
    assert log.count("has been submitted with SLURM jobid") == len(jobs)
    assert (tmp_path / "work" / "runs" / "smoke" / "table.md").is_file()
