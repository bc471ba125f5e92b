"""A proxy run's accuracy-vs-T curves drawn beside the papers' curves of the network it stands in for.

A proxy (the CIFAR ResNet-20 on Fashion-MNIST padded to 32x32x3, say) answers the papers' qualitative questions on
data we have: is plain QCFS poor at T <= 4, does SRP lift it, does the SNN approach its ANN as T grows. Its numbers
are never compared with the papers' cell by cell (another dataset), so the figure puts them in separate panels
with separate y axes: first the papers' curves (cited data, `snnlib/papers/paper_numbers.csv`), then one panel per
proxy experiment (ours, Wilson 95% bands over the pooled (seed, image) outcomes). Both use the papers' x axis: T,
the read-out steps, excluding a method's pre-run.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from .papers import load_paper_numbers
from .report import save_figure, save_message_figure
from .stats import wilson_interval

# the methods the papers draw as curves (cited data names), and ours that answer them
PAPER_CURVES = ("QCFS", "SRP", "COS")
OUR_CURVES = ("qcfs", "srp", "cos")


def beside_groups(cfg: dict) -> dict[tuple, list[str]]:
    """(tables, dataset, arch) of each `beside_paper` block -> the experiments drawn beside it, in config order."""
    groups: dict[tuple, list[str]] = {}
    for exp_id, exp in cfg["experiments"].items():
        ref = exp.get("beside_paper")
        if ref:
            groups.setdefault((tuple(ref["tables"]), ref["dataset"], ref["arch"]), []).append(exp_id)
    return groups


def paper_curves(paper: pd.DataFrame, tables: tuple[str, ...], dataset: str, arch: str) -> list[tuple[str, pd.DataFrame]]:
    """(label, cells sorted by T) of every SNN curve the named tables report for (dataset, arch)."""
    sel = (paper["table"].isin(tables) & (paper["dataset"] == dataset) & (paper["arch"] == arch)
           & (paper["metric"] == "snn") & paper["method"].isin(PAPER_CURVES) & paper["value"].notna()
           & paper["T"].notna() & (paper["T_label"].fillna("") == ""))
    out = []
    for (table, method, tau, L), g in paper[sel].groupby(
            ["table", "method", paper["tau"].fillna(0), paper["L"].fillna(0)], sort=False):
        label = method if method == "QCFS" else f"{method} {'rho' if method == 'COS' else 'tau'}={int(tau)}"
        label += f", L={int(L)}" if L else ""
        out.append((f"{label} ({table})", g.sort_values("T")))
    return out


def plot_beside_papers(cfg: dict, rows: pd.DataFrame, out_paths: list[Path]) -> None:
    """One row of panels per `beside_paper` group: the papers' curves, then each proxy experiment's."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = beside_groups(cfg)
    if not groups:
        save_message_figure("no experiment of this config names a paper to be drawn beside (beside_paper)", out_paths)
        return
    paper = load_paper_numbers()
    width = max(1 + len(exps) for exps in groups.values())
    fig, axes = plt.subplots(len(groups), width, figsize=(4.6 * width, 3.8 * len(groups)), squeeze=False)
    for row_axes, ((tables, dataset, arch), exps) in zip(axes, groups.items()):
        ax = row_axes[0]
        for label, g in paper_curves(paper, tables, dataset, arch):
            ax.plot(g["T"].astype(int), g["value"].astype(float), "o-", ms=3, label=label)
        ann = paper[paper["table"].isin(tables) & (paper["dataset"] == dataset) & (paper["arch"] == arch)
                    & (paper["metric"] == "ann") & (paper["method"] == "QCFS") & paper["value"].notna()]
        if not ann.empty:
            ax.axhline(float(ann["value"].iloc[0]), color="k", ls="--", lw=1,
                       label=f"QCFS ANN ({ann['table'].iloc[0]})")
        ax.set_title(f"PAPERS (cited): {dataset} {arch}", fontsize=9)
        for ax, exp_id in zip(row_axes[1:], exps):
            g = rows[(rows["experiment"] == exp_id) & rows["method"].isin(OUR_CURVES)]
            for (label, _variant), gv in g.groupby(["label", "variant"], sort=False, dropna=False):
                curve = gv.groupby("T").agg(mean=("accuracy", "mean"), correct=("correct", "sum"),
                                            n=("n_images", "sum"))
                bounds = [wilson_interval(int(k), int(m)) for k, m in zip(curve["correct"], curve["n"])]
                line, = ax.plot(curve.index, 100 * curve["mean"], "-", label=label.replace("SNN, ", ""))
                ax.fill_between(curve.index, [100 * b[0] for b in bounds], [100 * b[1] for b in bounds],
                                color=line.get_color(), alpha=0.2, lw=0)
            info = rows[rows["experiment"] == exp_id]
            qcfs = info[info["recipe"] == "qcfs"].drop_duplicates("seed")
            if not qcfs.empty:
                ax.axhline(100 * qcfs["ann_quantized_subset"].mean(), color="k", ls="--", lw=1, label="QCFS ANN")
            desc = (f"{info['model'].iloc[0]} on {info['dataset'].iloc[0]}, L={int(info['L'].iloc[0])}, "
                    f"seeds {sorted(set(int(s) for s in info['seed']))}") if not info.empty else "not run"
            ax.set_title(f"OURS, PROXY: {exp_id}\n{desc}", fontsize=8)
        for ax in row_axes[len(exps) + 1:]:
            ax.axis("off")
        for ax in row_axes[:len(exps) + 1]:
            ax.set_xscale("log", base=2)
            ax.set_xlabel("T (read-out steps; a pre-run adds tau)")
            ax.set_ylabel("accuracy (%)")
            ax.grid(alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=6, loc="lower right")
    fig.suptitle(f"{cfg['name']}: proxy curves beside the papers' (separate axes: another dataset, never compared "
                 "cell by cell)", fontsize=10)
    fig.tight_layout()
    save_figure(fig, out_paths, dpi=120)
