from pathlib import Path

import pandas as pd
import pytest

from snnlib.paper_tables import compare, table_markdown
from snnlib.papers import load_paper_numbers


def ours_rows(values):
    """values: list of (method, tau, metric, T, seed, value)."""
    return pd.DataFrame([{"table": "QCFS-T1", "dataset": "cifar10", "arch": "vgg16", "method": m, "tau": tau,
                          "metric": metric, "T": T, "seed": s, "value": v} for m, tau, metric, T, s, v in values])


def test_regenerated_table_on_fixture_rows():
    paper = load_paper_numbers()
    t1 = paper[(paper["table"] == "QCFS-T1") & (paper["arch"] == "vgg16")]
    ours = ours_rows([("QCFS", None, "ann", None, 0, 95.0), ("QCFS", None, "ann", None, 1, 95.4),
                      ("QCFS", None, "snn", 2, 0, 88.0)])
    cmp = compare(t1, ours, tolerance_pp=1.0)
    qcfs_ann = cmp[(cmp["method"] == "QCFS") & (cmp["metric"] == "ann")].iloc[0]
    assert qcfs_ann["ours_str"] == "95.20 +- 0.28 (n=2)"
    assert abs(qcfs_ann["diff"] - (95.2 - 95.52)) < 1e-9 and qcfs_ann["within_tolerance"] is True
    t2 = cmp[(cmp["method"] == "QCFS") & (cmp["T"] == 2)].iloc[0]
    assert t2["ours_str"] == "88.00" and t2["within_tolerance"] is False  # 91.18 in the paper
    t4 = cmp[(cmp["method"] == "QCFS") & (cmp["T"] == 4)].iloc[0]
    assert t4["ours_str"] == "not run" and t4["within_tolerance"] is None
    rmp = cmp[(cmp["method"] == "RMP") & (cmp["T"] == 2)].iloc[0]
    assert rmp["paper_str"] == "not reported" and rmp["ours_str"] == "n/a"
    md = table_markdown(cmp, 1.0)
    assert "95.52 / 95.20 +- 0.28 (n=2) (-0.32, within)" in md
    assert "91.18 / 88.00 (-3.18, OUTSIDE)" in md
    assert "93.96 / not run" in md and "T>=512" in md
    assert "2 cells compared, 1 within tolerance" in md


def test_not_retrieved_cells_stay_not_retrieved():
    paper = load_paper_numbers()
    srp10 = paper[paper["table"] == "SRP-CIFAR10"]
    cmp = compare(srp10, ours_rows([]).reindex(columns=["table", "dataset", "arch", "method", "tau", "metric", "T",
                                                          "seed", "value"]), 1.0)
    assert (cmp["paper_str"] == "not retrieved").all() and (cmp["ours_str"] == "not run").all()
    assert "not retrieved / not run" in table_markdown(cmp, 1.0)


def _written(out):
    return {str(p.relative_to(out)) for p in out.iterdir()}


@pytest.mark.slow
def test_regeneration_writes_exactly_the_declared_files_and_no_empty_plot(tmp_path, monkeypatch):
    """What the paper_tables rule declares is what regenerate writes; a table with no reported SNN number (SRP's
    CIFAR-10, not retrieved) gets no accuracy figure, and only tables some run of ours regenerates get an energy
    plot (an empty axis in the report would say nothing)."""
    from snnlib import paper_report
    from snnlib.smk import REPO_ROOT

    def declared(result_csvs, configs):
        files = paper_report.output_files(result_csvs, configs, out_dir=str(tmp_path / "out"))
        return {str(Path(p).relative_to(tmp_path / "out")) for paths in files.values() for p in paths}

    out = tmp_path / "out"
    paper_report.regenerate([], [], out)
    expected = declared([], []) | {"paper_tables.md", "paper_tables.html", "comparison.csv"}
    assert _written(out) == expected
    assert "SRP-CIFAR10.png" not in expected and "QCFS-T1.png" in expected
    assert not [f for f in expected if f.endswith("_accuracy_vs_energy.png")]

    # one run that regenerates QCFS-T1 (the default's LeNet rows, named as such a run): now it has an energy plot
    rows = pd.read_csv(REPO_ROOT / "results" / "default" / "results.csv")
    rows = rows[rows["experiment"] == "mnist_lenet"].assign(config="cfg", experiment="e1")
    csv = tmp_path / "results.csv"
    rows.to_csv(csv, index=False)
    monkeypatch.setattr(paper_report, "paper_refs", lambda paths: {
        ("cfg", "e1"): {"tables": ["QCFS-T1"], "dataset": "cifar10", "arch": "vgg16"}})
    paper_report.regenerate([csv], [], out)
    expected = declared([csv], []) | {"paper_tables.md", "paper_tables.html", "comparison.csv"}
    assert _written(out) == expected
    assert [f for f in expected if f.endswith("_accuracy_vs_energy.png")] == ["QCFS-T1_accuracy_vs_energy.png"]


def test_a_regenerated_figure_is_byte_identical(tmp_path):
    """Committed plots are regenerated (snakemake paper_tables, make report-papers): the same figure must give the
    same bytes, or every regeneration would be a change to git (an SVG used to carry its date and random ids)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from snnlib.report import save_figure

    def draw(name):
        fig, ax = plt.subplots()
        ax.plot([1, 2, 4], [50.0, 70.0, 90.0], "o-", label="paper: QCFS")
        ax.legend()
        save_figure(fig, [tmp_path / f"{name}.svg", tmp_path / f"{name}.png"])

    draw("a")
    draw("b")
    for ext in ("svg", "png"):
        assert (tmp_path / f"a.{ext}").read_bytes() == (tmp_path / f"b.{ext}").read_bytes(), ext
