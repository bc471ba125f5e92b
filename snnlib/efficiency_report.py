"""Efficiency tables and accuracy-vs-energy plots from result rows (the columns of efficiency.py).

Used per config (rule aggregate: results/<run>/efficiency.md) and per paper table (rule paper_tables). Values are
per image, mean over the seeds that ran; SRP's pre-run is included in its operations and energy."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
from tabulate import tabulate

from .efficiency import NEUROBENCH_NAMES, neurobench_columns
from .report import FLOAT_BITS, save_figure, save_message_figure

COLUMNS = ["firing_rate", "activation_sparsity", "acs", "macs", "dense_ops", "prerun_ops_share", "energy_uj",
           "ann_macs", "ann_energy_uj", "energy_ratio", "accuracy", "SynOps", *NEUROBENCH_NAMES]


def efficiency_frame(rows: pd.DataFrame, report_T: list[int]) -> pd.DataFrame:
    """One line per (experiment, method, tau, T in report_T) with measured efficiency, mean over seeds. Rows
    read from a results.csv written before the NeuroBench-named columns existed get them (the same numbers)."""
    if rows.empty or "acs" not in rows:
        return pd.DataFrame()
    have = rows[(rows["weight_bits"] == FLOAT_BITS) & rows["acs"].notna() & rows["T"].isin(report_T)]
    if have.empty:
        return pd.DataFrame()
    # rows from a results.csv older than the NeuroBench-named columns (alone, or concatenated with newer ones)
    have = have.assign(**{c: v if c not in have else have[c].fillna(v) for c, v in neurobench_columns(have).items()})
    keys = ["experiment", "model", "dataset", "L", "method", "variant", "label", "T", "latency"]
    agg = have.groupby(keys, sort=False, dropna=False).agg(
        **{c: (c, "mean") for c in COLUMNS}, seeds=("seed", "nunique"),
        energy_costs=("energy_costs", "first")).reset_index()
    return agg


def efficiency_markdown(rows: pd.DataFrame, report_T: list[int], title: str) -> str:
    df = efficiency_frame(rows, report_T)
    parts = [f"# {title}", ""]
    if df.empty:
        return "\n".join(parts + ["No measured efficiency yet: no evaluation with operation counts has run.", ""])
    parts += [
        "Per image, from real forward passes on every evaluated test image (snnlib/metrics.py SynOpsMeter; "
        "NeuroBench's definitions and names, docs/efficiency.md): Effective_ACs (inputs emitted by an IF layer, "
        "binary by origin, not by value; the spike amplitude theta is folded into the next layer's weights, so "
        "each spike is an addition), Effective_MACs (the analog first layer, average-pooled spikes), "
        "SynOps = Effective_ACs + Effective_MACs, Dense = every pair as an ANN computes them. T counts read-out "
        "steps; a method with a pre-run (SRP's tau) runs it first, and its operations and energy include it "
        "(column pre-run %). Firing rate and ActivationSparsity are over the hidden IF layers during the T "
        "read-out steps. "
        f"Energy: {df['energy_costs'].iloc[0]}. The ANN does its dense MACs once per image. "
        "Mean over seeds (column n).", ""]
    for exp_id, g in df.groupby("experiment", sort=False):
        first = g.iloc[0]
        parts += [f"## {exp_id}: {first['model']} on {first['dataset']}", ""]
        body = []
        for r in g.itertuples():
            body.append([r.label, int(r.T), int(r.latency),
                         f"{100 * r.accuracy:.2f}", f"{r.firing_rate:.4f}", f"{r.ActivationSparsity:.4f}",
                         f"{r.Effective_ACs / 1e6:.4g}", f"{r.Effective_MACs / 1e6:.4g}",
                         f"{r.SynOps / 1e6:.4g}", f"{r.Dense / 1e6:.4g}",
                         f"{100 * r.prerun_ops_share:.1f}", f"{r.energy_uj:.4g}", f"{r.ann_energy_uj:.4g}",
                         f"{r.energy_ratio:.3g}", int(r.seeds)])
        parts += [tabulate(body, headers=["method", "T", "tau+T", "accuracy %", "firing rate", "ActivationSparsity",
                                          "Effective_ACs (M)", "Effective_MACs (M)", "SynOps (M)", "Dense (M)",
                                          "pre-run %", "SNN uJ", "ANN uJ",
                                          "SNN/ANN energy", "n"],
                           tablefmt="github", disable_numparse=True), ""]
    return "\n".join(parts)


def plot_accuracy_vs_energy(rows: pd.DataFrame, out_paths: list[Path], title: str, report_T: list[int]) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    df = efficiency_frame(rows, report_T)
    if df.empty:
        save_message_figure("No measured efficiency yet.", out_paths, fontsize=9, dpi=120)
        return
    exps = list(dict.fromkeys(df["experiment"]))
    fig, axes = plt.subplots(1, len(exps), figsize=(4.8 * len(exps), 3.9), squeeze=False)
    for ax, exp_id in zip(axes[0], exps):
        g = df[df["experiment"] == exp_id]
        for (method, variant), gm in g.groupby(["method", "variant"], sort=False):
            ax.plot(gm["energy_uj"], 100 * gm["accuracy"], "o-", ms=3, label=gm["label"].iloc[0])
        ax.axvline(g["ann_energy_uj"].iloc[0], color="k", ls="--", lw=1, label="ANN (one forward)")
        ax.set_xscale("log")
        ax.set_xlabel("energy per image (uJ; SRP incl. its pre-run)")
        ax.set_ylabel("accuracy (%)")
        ax.set_title(f"{exp_id}: {g['model'].iloc[0]} / {g['dataset'].iloc[0]}", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    fig.suptitle(f"{title}: accuracy vs estimated energy (points: T in the table grid)", fontsize=10)
    fig.tight_layout()
    save_figure(fig, out_paths, dpi=120)
