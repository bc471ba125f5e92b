"""The workflow as the Snakemake workflow catalog checks it (`snakemake --lint` clean, snakefmt-formatted, the
catalog's files), imported as a module of another workflow, and the run settings of `snakemake --config`: one schema
validates them, they reach every job and, where they change results, the experiment hash."""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from snnlib.config import experiment_hash, load_config, training_hash
from test_workflow import ROOT, SNAKEMAKE, TINY, have_mnist

CIFAR10 = ROOT / "config" / "papers" / "qcfs_srp_cifar10.yaml"
RUN_SETTINGS = ("budget", "seeds", "epochs", "T_max", "taus", "device")


def run(args, cwd, **kw):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    return subprocess.run(args, capture_output=True, text=True, cwd=cwd, env=env, timeout=kw.pop("timeout", 300), **kw)


def copy_workflow(dest: Path) -> Path:
    """This repository's Snakefile and workflow/ under `dest` (to break on purpose)."""
    shutil.copy(ROOT / "Snakefile", dest / "Snakefile")
    shutil.copytree(ROOT / "workflow", dest / "workflow")
    shutil.copy(ROOT / "pyproject.toml", dest / "pyproject.toml")  # snakefmt's settings
    return dest


VIOLATION = '\n\nrule bad:\n    output:\n        "x.txt",\n    shell:\n        "echo {RES} > {output}"\n'


# ----------------------------------------------------------------------------------------------------- the linter

def lint(cwd: Path, *args) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "snakemake", "--lint", *args], cwd)


@pytest.mark.slow
def test_lint_is_clean_as_the_catalog_runs_it():
    r = lint(ROOT)  # the catalog: `snakemake --lint` in the repository root
    assert r.returncode == 0 and "Lints for" not in r.stdout + r.stderr, r.stdout + r.stderr
    assert "Congratulations, your workflow is in a good condition!" in r.stdout + r.stderr


@pytest.mark.slow
def test_lint_fails_on_a_rule_that_breaks_the_rules(tmp_path):
    wf = copy_workflow(tmp_path)
    with open(wf / "workflow" / "rules" / "train.smk", "a") as f:
        f.write(VIOLATION)
    (tmp_path / "work").mkdir()
    r = lint(wf, "-d", str(tmp_path / "work"))
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert "Lints for rule bad" in out and "Shell command directly uses variable RES from outside of the rule" in out
    assert "Specify a conda environment or container for each rule" in out and "No log directive defined" in out


# ---------------------------------------------------------------------------------------------------- the format

def snakefmt_check(cwd: Path) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "snakefmt", "--check", "-v", "Snakefile", "workflow"], cwd)


def test_every_snakefile_is_snakefmt_formatted():
    r = snakefmt_check(ROOT)
    assert r.returncode == 0, r.stdout + r.stderr


def test_snakefmt_check_fails_on_a_misformatted_rule(tmp_path):
    wf = copy_workflow(tmp_path)
    train = wf / "workflow" / "rules" / "train.smk"
    train.write_text(train.read_text().replace("    threads: 2\n", "    threads:   2\n"))
    r = snakefmt_check(wf)
    assert r.returncode != 0 and "train.smk" in r.stdout + r.stderr, r.stdout + r.stderr


# -------------------------------------------------------------------------------------------- the jobs' python

def test_the_jobs_run_the_python_that_runs_snakemake(tmp_path):
    from snnlib.smk import put_python_on_path
    venv = tmp_path / "venv" / "bin"
    venv.mkdir(parents=True)
    (venv / "python").touch()
    env = {"PATH": "/usr/bin:/bin"}  # e.g. .venv/bin/snakemake started from a shell without the venv
    assert put_python_on_path(str(venv / "python"), env) is None
    assert env["PATH"] == f"{venv}:/usr/bin:/bin"
    put_python_on_path(str(venv / "python"), env)  # every parse of the workflow: once is enough
    assert env["PATH"] == f"{venv}:/usr/bin:/bin"
    warning = put_python_on_path(str(tmp_path / "python3"), {"PATH": "/bin"})
    assert warning and "holds no `python`" in warning


# ------------------------------------------------------------------------------------------ the catalog's layout

def test_the_catalog_layout_is_there():
    for f in ("Snakefile", "workflow/Snakefile", "config/config.yaml", "config/README.md", ".test/config/config.yaml",
              "workflow/envs/snnlib.yaml", "workflow/schemas/config.schema.yaml", "LICENSE", "CITATION.cff",
              ".snakemake-workflow-catalog.yml"):
        assert (ROOT / f).is_file(), f
    assert not (ROOT / "environment.yml").exists()
    assert [p.name for p in (ROOT / "workflow" / "envs").iterdir()] == ["snnlib.yaml"]
    catalog = yaml.safe_load((ROOT / ".snakemake-workflow-catalog.yml").read_text())["usage"]
    assert {"mandatory-flags", "software-stack-deployment", "report"} <= set(catalog)
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["title"] and cff["authors"] and cff["license"] == "MIT"
    assert "MIT License" in (ROOT / "LICENSE").read_text()
    # config/config.yaml holds the run settings only: the experiments stay in config/default.yaml
    assert set(yaml.safe_load((ROOT / "config" / "config.yaml").read_text())) == set(RUN_SETTINGS)


def test_every_rule_that_runs_a_command_uses_the_one_environment():
    rules = (ROOT / "workflow" / "rules").glob("*.smk")
    text = "\n".join(p.read_text() for p in rules)
    shells, envs = text.count("    shell:"), re.findall(r"    conda:\n\s+\"([^\"]+)\"", text)
    assert shells and len(envs) == shells and set(envs) == {"../envs/snnlib.yaml"}


@pytest.mark.slow
def test_the_test_folder_runs_the_smoke_config():
    r = run(SNAKEMAKE + ["-n", "--cores", "1", "-d", str(ROOT / ".test")], ROOT)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "runs/smoke/mnist_lenet/seed0/qcfs/ann.pt" in r.stdout


# ----------------------------------------------------------------------------------------- as a module elsewhere

HOST = """\
configfile: "host.yaml"


module snn:
    snakefile:
        "{snakefile}"
    config:
        config["snn"]


use rule * from snn as snn_*
"""


@pytest.mark.slow
def test_imported_as_a_module_of_another_workflow_it_dry_runs(tmp_path):
    (tmp_path / "Snakefile").write_text(HOST.format(snakefile=ROOT / "workflow" / "Snakefile"))
    (tmp_path / "host.yaml").write_text(yaml.safe_dump({"other": 1, "snn": {"epochs": 1, "T_max": 8}}))
    r = run([sys.executable, "-m", "snakemake", "-n", "-p", "--cores", "1"], tmp_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    for rule in ("snn_train", "snn_convert", "snn_evaluate", "snn_aggregate", "snn_verify", "snn_all"):
        assert rule in r.stdout, rule
    assert "python -m snnlib train --config runs/default/config-" in r.stdout
    # the module's settings were applied, in the host's working directory
    (written,) = (tmp_path / "runs" / "default").glob("config-*.yaml")
    cfg = load_config(written)
    assert cfg["experiments"]["mnist_lenet"]["train"]["epochs"] == 1
    assert {e["eval"]["T_max"] for e in cfg["experiments"].values()} == {8}


@pytest.mark.slow
def test_a_module_config_is_validated_by_the_same_schema(tmp_path):
    (tmp_path / "Snakefile").write_text(HOST.format(snakefile=ROOT / "workflow" / "Snakefile"))
    (tmp_path / "host.yaml").write_text(yaml.safe_dump({"snn": {"epohcs": 1}}))
    r = run([sys.executable, "-m", "snakemake", "-n", "--cores", "1"], tmp_path)
    assert r.returncode != 0 and "unknown key 'epohcs'" in r.stdout + r.stderr


# ----------------------------------------------------------------------------------------------- run settings

@pytest.mark.slow
def test_a_misspelt_setting_stops_the_run_before_any_job_naming_the_valid_keys(tmp_path):
    # a real run, not a dry run: nothing may start
    r = run(SNAKEMAKE + ["--cores", "1", "-d", str(tmp_path), "--configfile", str(CIFAR10), "--config",
                         "budgte=smoke"], ROOT)
    out = r.stdout + r.stderr
    assert r.returncode != 0 and "unknown key 'budgte'" in out, out[-3000:]
    assert all(k in out for k in RUN_SETTINGS) and "experiments" in out
    assert not (tmp_path / "runs").exists() and not (tmp_path / "logs").exists()


@pytest.mark.slow
def test_an_impossible_setting_is_refused_naming_it(tmp_path):
    r = run(SNAKEMAKE + ["-n", "--cores", "1", "-d", str(tmp_path), "--configfile", str(CIFAR10), "--config",
                         "T_max=0"], ROOT)
    assert r.returncode != 0 and "T_max: 0 is less than the minimum of 1" in r.stdout + r.stderr


def written_config(stdout: str, work: Path) -> dict:
    (path,) = set(re.findall(r"--config (runs/\S+/config-[0-9a-f]{12}\.yaml)", stdout))
    return load_config(work / path)


@pytest.mark.slow
def test_settings_reach_every_job_and_change_the_hash_where_they_change_results(tmp_path):
    settings = ["budget=smoke", "seeds=[0,1]", "epochs=5", "T_max=16", "taus=[1,2]", "device=cuda"]
    r = run(SNAKEMAKE + ["-n", "-p", "--cores", "1", "-d", str(tmp_path), "--configfile", str(CIFAR10),
                         "--config", *settings], ROOT)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    base = load_config(CIFAR10, "smoke")
    for exp_id in base["experiments"]:
        for seed in (0, 1):  # the settings' seeds, not the smoke budget's [0]
            assert f"runs/qcfs_srp_cifar10/smoke/{exp_id}/seed{seed}/qcfs/ann.pt" in r.stdout
    cfg = written_config(r.stdout, tmp_path)  # what every job reads
    assert cfg["run_name"] == "qcfs_srp_cifar10/smoke" and cfg["device"] == "cuda"
    for exp_id, exp in cfg["experiments"].items():
        assert exp["seeds"] == [0, 1] and exp["train"]["epochs"] == 5 and exp["eval"]["T_max"] == 16
        assert exp["methods"]["srp"]["taus"] == [1, 2]
        assert experiment_hash(exp) != experiment_hash(base["experiments"][exp_id])
        assert training_hash(exp, "qcfs") != training_hash(base["experiments"][exp_id], "qcfs")
    # every job of the run reads that one file
    commands = [line for line in r.stdout.splitlines() if "python -m snnlib" in line and " --config " in line]
    assert len(commands) > 10 and len(set(re.findall(r"--config (\S+)", "\n".join(commands)))) == 1


def test_device_and_seeds_never_change_a_hash():
    base = load_config(CIFAR10, "smoke")
    moved = load_config(CIFAR10, "smoke", {"device": "cuda:1", "seeds": [3]})
    for exp_id, exp in moved["experiments"].items():
        assert experiment_hash(exp) == experiment_hash(base["experiments"][exp_id])
        assert training_hash(exp, "qcfs") == training_hash(base["experiments"][exp_id], "qcfs")


@pytest.mark.slow
@pytest.mark.data
def test_a_setting_reruns_only_the_jobs_whose_result_it_changes(tmp_path):
    if not have_mnist() and not os.environ.get("SNNLIB_REQUIRE_DATA"):
        pytest.skip("MNIST not prepared (run `make data`)")
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(TINY))
    args = SNAKEMAKE + ["-d", str(tmp_path), "--configfile", str(cfg), "--cores", "2"]
    r = run(args + ["--config", "device=cpu"], ROOT, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]

    def planned(*settings):
        r = run(args + ["-n", "--config", *settings], ROOT)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        return r.stdout

    assert "Nothing to be done" in planned("device=auto")  # the device reruns nothing
    more_seeds = planned("seeds=[0,1]")  # a new seed runs only its own jobs
    assert "runs/tiny/mnist_lenet/seed1/qcfs/ann.pt" in more_seeds
    assert "runs/tiny/mnist_lenet/seed0/qcfs/ann.pt" not in more_seeds
    longer = planned("epochs=2")  # training changes: it reruns, and what follows it
    assert "runs/tiny/mnist_lenet/seed0/qcfs/ann.pt" in longer and "eval/srp.json" in longer
    evaluation = planned("T_max=4")  # the evaluation changes: training stays
    assert "eval/qcfs.json" in evaluation and "ann.pt" not in evaluation
