"""The paper-configuration catalogue: every config validates at every budget, appears in the DAG, and runs end to
end at the smoke budget on small fixture files in the official on-disk formats (plumbing only: no result rows)."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from snnlib.config import load_config, recipes_of

ROOT = Path(__file__).resolve().parents[1]
CATALOGUE = sorted((ROOT / "config" / "papers").glob("*.yaml"))
SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile")]


def test_catalogue_covers_both_papers():
    names = {p.stem for p in CATALOGUE}
    assert {"qcfs_srp_cifar10", "qcfs_srp_cifar100", "qcfs_srp_imagenet", "cq_cifar10"} <= names


@pytest.mark.parametrize("path", CATALOGUE, ids=lambda p: p.stem)
def test_every_budget_validates(path):
    raw = yaml.safe_load(path.read_text())
    for budget in raw["budgets"]:
        cfg = load_config(path, budget)
        assert cfg["run_name"] == f"{raw['name']}/{budget}"
    smoke = load_config(path, "smoke")
    assert all(e["eval"]["T_max"] <= 8 for e in smoke["experiments"].values())


@pytest.mark.slow
@pytest.mark.parametrize("path", CATALOGUE, ids=lambda p: p.stem)
def test_every_entry_appears_in_the_dag(path, tmp_path):
    cfg = load_config(path)
    r = subprocess.run(SNAKEMAKE + ["-n", "--cores", "1", "-d", str(tmp_path), "--configfile", str(path)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    for exp_id, exp in cfg["experiments"].items():
        for seed in exp["seeds"]:
            for recipe in recipes_of(exp):
                assert f"runs/{cfg['run_name']}/{exp_id}/seed{seed}/{recipe}/ann.pt" in r.stdout
            for method in exp["methods"]:
                assert f"runs/{cfg['run_name']}/{exp_id}/seed{seed}/eval/{method}.json" in r.stdout


@pytest.mark.slow
def test_unknown_budget_is_refused(tmp_path):
    r = subprocess.run(SNAKEMAKE + ["-n", "--cores", "1", "-d", str(tmp_path), "--configfile",
                                    str(CATALOGUE[0]), "--config", "budget=huge"], capture_output=True, text=True)
    assert r.returncode != 0 and "unknown budget 'huge'" in r.stdout + r.stderr


# ----------------------------------------------------------------------------- smoke runs on fixture files

def write_cifar(raw: Path, which: str) -> None:
    """Balanced fixture pickles in the official layout (bytes keys, uint8 [N, 3072], label lists)."""
    import pickle
    rng = np.random.default_rng(0)
    classes, key = (10, b"labels") if which == "cifar10" else (100, b"fine_labels")
    folder = raw / ("cifar-10-batches-py" if which == "cifar10" else "cifar-100-python")
    folder.mkdir(parents=True)

    def dump(name, n):
        y = np.arange(n) % classes
        x = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": x, key: y.tolist(), b"batch_label": b"fixture"}, f, protocol=2)
    if which == "cifar10":
        for i in range(1, 6):
            dump(f"data_batch_{i}", 14)
        dump("test_batch", 20)
    else:
        dump("train", 70)
        dump("test", 100)


def write_imagenet(raw: Path) -> None:
    Image = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for wnid in ("n01440764", "n01443537"):
            folder = raw / "imagenet" / split / wnid
            folder.mkdir(parents=True)
            for i in range(3):
                Image.fromarray(rng.integers(0, 256, (240, 260, 3), dtype=np.uint8)).save(folder / f"{i}.JPEG")


@pytest.fixture(scope="module")
def fixture_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("fixture-data")
    raw = root / "raw"
    write_cifar(raw, "cifar10")
    write_cifar(raw, "cifar100")
    write_imagenet(raw)
    (root / "cache").mkdir()
    real = ROOT / "data" / "cache"
    for name in ("mnist", "fashion_mnist"):  # real data for the MNIST and proxy configs
        if (real / f"{name}.npz").exists():
            shutil.copy(real / f"{name}.npz", root / "cache" / f"{name}.npz")
    return root


@pytest.mark.slow
@pytest.mark.parametrize("path", CATALOGUE, ids=lambda p: p.stem)
def test_smoke_budget_runs_end_to_end(path, fixture_root, tmp_path):
    cfg = load_config(path, "smoke")
    needs = {e["dataset"] for e in cfg["experiments"].values()}
    if needs & {"mnist", "fashion_mnist", "fashion_mnist_proxy32"} and not (fixture_root / "cache").glob("*.npz"):
        pytest.skip("MNIST/Fashion-MNIST not prepared (make data)")
    env = dict(os.environ, SNNLIB_DATA=str(fixture_root), SNNLIB_FIXTURE_DATA="1")
    r = subprocess.run(SNAKEMAKE + ["--cores", "2", "-d", str(tmp_path), "--configfile", str(path),
                                    "--config", "budget=smoke"], capture_output=True, text=True, env=env,
                       timeout=900)
    logs = "".join(p.read_text()[-1500:] for p in (tmp_path / "logs").rglob("*.log")) if r.returncode else ""
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:] + logs
    res = tmp_path / "runs" / cfg["run_name"]
    assert pd.read_csv(res / "results.csv").empty  # fixture runs never write result rows
    assert "No result rows" in (res / "table.md").read_text()
    for exp_id, exp in cfg["experiments"].items():
        for method in exp["methods"]:
            assert (res / exp_id / "seed0" / "eval" / f"{method}.json").is_file()
