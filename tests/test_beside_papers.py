"""The proxy-beside-papers figure: which paper curves it draws, which experiments sit beside them, and that the
config refuses a malformed block."""
import copy
from pathlib import Path

import pandas as pd
import pytest

from snnlib.beside_papers import beside_groups, paper_curves, plot_beside_papers
from snnlib.config import ConfigError, load_config, validate
from snnlib.papers import load_paper_numbers

REPO = Path(__file__).resolve().parents[1]


def test_paper_curves_of_cifar100_resnet20():
    curves = dict(paper_curves(load_paper_numbers(), ("QCFS-T2", "SRP-README", "COS-README"), "cifar100",
                               "resnet20"))
    assert set(curves) == {"QCFS (QCFS-T2)", "SRP tau=4, L=8 (SRP-README)", "COS rho=4 (COS-README)"}
    qcfs = curves["QCFS (QCFS-T2)"]
    # the T >= 512 cell is a label, not a point on the T axis; another method's quoted cells are not curves
    assert list(qcfs["T"]) == [2, 4, 8, 16, 32, 64]
    assert list(qcfs["value"].round(2)) == [19.96, 34.14, 55.37, 67.33, 69.82, 70.49]
    assert list(curves["SRP tau=4, L=8 (SRP-README)"]["value"].round(2)) == [46.48, 53.96, 59.34, 62.94]


def test_proxy_config_groups_both_experiments_beside_the_papers():
    cfg = load_config(REPO / "config" / "proxy_cpu.yaml")
    assert beside_groups(cfg) == {(("QCFS-T2", "SRP-README", "COS-README"), "cifar100", "resnet20"):
                                  ["proxy_resnet20_L4", "proxy_resnet20_L8"]}
    assert beside_groups(load_config(REPO / "config" / "default.yaml")) == {}


def test_malformed_beside_paper_is_refused():
    import yaml
    raw = yaml.safe_load((REPO / "config" / "proxy_cpu.yaml").read_text())
    bad = copy.deepcopy(raw)
    bad["defaults"]["beside_paper"] = {"tables": ["QCFS-T2"], "dataset": "cifar100"}  # no arch
    with pytest.raises(ConfigError, match="arch"):
        validate(bad, "proxy_cpu.yaml")


def test_figure_is_written_from_rows(tmp_path):
    cfg = load_config(REPO / "config" / "proxy_cpu.yaml")
    rows = pd.DataFrame([{"experiment": "proxy_resnet20_L4", "method": m, "variant": v, "label": lab, "T": t,
                          "accuracy": a, "correct": int(a * 100), "n_images": 100, "recipe": "qcfs", "seed": 0,
                          "model": "resnet20", "dataset": "fashion_mnist_proxy32", "L": 4,
                          "ann_quantized_subset": 0.9}
                         for m, v, lab in (("qcfs", None, "SNN, QCFS"), ("srp", "tau4", "SNN, SRP tau=4"))
                         for t, a in ((1, 0.5), (2, 0.7), (4, 0.85))])
    out = [tmp_path / "b.png", tmp_path / "b.svg"]
    plot_beside_papers(cfg, rows, out)
    assert all(p.stat().st_size > 10_000 for p in out)
    svg = out[1].read_text()
    assert "QCFS (QCFS-T2)" in svg and "SRP tau=4" in svg and "not run" in svg  # L8 has no rows yet
