"""The Snakemake DAG: dry-run of the default target, a tiny real end-to-end run, and clear failures."""
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile")]

TINY = {
    "name": "tiny",
    "description": "test-only tiny run (not a result)",
    "experiments": {
        "mnist_lenet": {
            "dataset": "mnist", "model": "lenet", "seeds": [0],
            "activation": {"L": 4, "lambda_init": {"percentile": 99.9, "samples": 64}},
            "train": {"epochs": 1, "max_samples": 512, "batch_size": 64},
            "methods": {"qcfs": {}, "srp": {"taus": [2]}},
            "eval": {"T_max": 8, "test_per_class": 3, "batch_size": 16},
        }
    },
}


def have_mnist():
    from snnlib.data import load_split
    try:
        load_split("mnist", "test")
        return True
    except FileNotFoundError:
        return False


@pytest.mark.slow
def test_default_dag_dry_run():
    # --forceall: the whole DAG whatever this checkout has already run
    r = subprocess.run(SNAKEMAKE + ["-n", "--forceall", "--cores", "2", "-d", str(ROOT)], capture_output=True,
                       text=True, cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    for rule in ("train", "convert", "evaluate", "aggregate"):
        assert rule in r.stdout


@pytest.mark.slow
def test_invalid_config_fails_before_any_job(tmp_path):
    bad = dict(TINY, experiments={"e": {"dataset": "mnist", "model": "lenet5", "train": {"epochs": 1}}})
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(yaml.safe_dump(bad))
    r = subprocess.run(SNAKEMAKE + ["-n", "--cores", "1", "-d", str(tmp_path), "--configfile", str(cfg)],
                       capture_output=True, text=True)
    assert r.returncode != 0
    assert "lenet5" in r.stdout + r.stderr and "experiments.e.model" in r.stdout + r.stderr


@pytest.mark.slow
@pytest.mark.data
def test_tiny_end_to_end_run(tmp_path):
    if not have_mnist() and not os.environ.get("SNNLIB_REQUIRE_DATA"):
        pytest.skip("MNIST not prepared (run `make data`)")
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(TINY))
    r = subprocess.run(SNAKEMAKE + ["--cores", "2", "-d", str(tmp_path), "--configfile", str(cfg)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    res = tmp_path / "runs" / "tiny"
    rows = pd.read_csv(res / "results.csv")
    assert len(rows) == 2 * 8  # (qcfs, srp tau 2) x T = 1..8
    assert set(rows["tau"]) == {0, 2} and (rows["latency"] == rows["t_pre"] + rows["T"]).all()
    assert rows["accuracy"].between(0, 1).all() and rows["n_images"].eq(30).all()
    assert ((rows["ci_low"] <= rows["accuracy"]) & (rows["accuracy"] <= rows["ci_high"])).all()
    for col in ("git_commit", "train_git_commit", "torch_version", "device", "cpu_model", "threads", "numpy_version",
                "python_version", "os", "data_sha256", "config_hash", "train_wall_s", "eval_wall_s"):
        assert rows[col].notna().all(), col
    table = (res / "table.md").read_text()
    assert "SNN, QCFS" in table and "SRP tau=2" in table and "T=8" in table and "T=16" in table
    assert (res / "accuracy_vs_T.png").stat().st_size > 1000 and (res / "accuracy_vs_T.svg").exists()
    claims = (res / "claims.md").read_text()
    assert "SRP beats plain QCFS at the same total latency" in claims
    assert "no reference" in (res / "verification.md").read_text()

    # promote the run to a reference, then verify: identical; then an injected one-cell difference and a stale
    # reference are reported
    verify = [sys.executable, "-m", "snnlib", "verify", "--run", str(res), "--reference", str(tmp_path / "ref")]
    subprocess.run([sys.executable, "-m", "snnlib", "promote", "--run", str(res), "--reference",
                    str(tmp_path / "ref")], check=True, capture_output=True)
    r = subprocess.run(verify, capture_output=True, text=True)
    assert r.returncode == 0 and "**identical**" in r.stdout and "WARNING" not in r.stdout, r.stdout
    ref_rows = pd.read_csv(tmp_path / "ref" / "results.csv")
    cell = (ref_rows["method"] == "srp") & (ref_rows["T"] == 3)
    ref_rows.loc[cell, "accuracy"] += 0.1
    ref_rows.loc[:, "git_commit"] = "0123456789ab"
    ref_rows.to_csv(tmp_path / "ref" / "results.csv", index=False)
    r = subprocess.run(verify, capture_output=True, text=True)
    assert r.returncode == 1 and "**different**" in r.stdout, r.stdout
    assert "'method': 'srp', 'variant': 'tau2', 'T': '3'" in r.stdout.replace('"', "'")
    assert "WARNING: the reference's code (0123456789ab" in r.stdout


@pytest.mark.data
def test_missing_dataset_gives_one_clear_error(tmp_path):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(TINY))
    env = dict(os.environ, SNNLIB_DATA=str(tmp_path / "empty"))
    r = subprocess.run([sys.executable, "-m", "snnlib", "train", "--config", str(cfg), "--experiment",
                        "mnist_lenet", "--seed", "0", "--recipe", "qcfs", "--out", str(tmp_path / "a.pt"), "--report",
                        str(tmp_path / "a.json"), "--outcomes", str(tmp_path / "a.npz")],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 1
    assert "make data" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
@pytest.mark.data
def test_config_path_with_spaces_and_shell_syntax_is_never_run_by_a_shell(tmp_path):
    """Every path reaches the rules' shell lines quoted: a config file whose path holds a space and a command
    substitution runs the whole smoke DAG, and the substitution is never executed."""
    if not have_mnist() and not os.environ.get("SNNLIB_REQUIRE_DATA"):
        pytest.skip("MNIST not prepared (run `make data`)")
    folder = tmp_path / "my configs"
    folder.mkdir()
    evil = folder / "x$(touch INJECTED).yaml"
    evil.write_text((ROOT / "config" / "smoke.yaml").read_text())
    work = tmp_path / "work dir"
    work.mkdir()
    r = subprocess.run(SNAKEMAKE + ["--cores", "2", "-d", str(work), "--configfile", str(evil)],
                       capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert not list(tmp_path.rglob("INJECTED")) and not (ROOT / "INJECTED").exists()
    assert (work / "runs" / "smoke" / "results.csv").is_file()
