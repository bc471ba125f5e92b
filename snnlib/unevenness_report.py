"""Markdown table and plot of the unevenness analysis (shares of each category per layer, T and tau)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
from tabulate import tabulate

from .report import save_figure
from .unevenness import ERROR_CATEGORIES

LABELS = {"ann0_snn_pos": "ideal 0, SNN > 0", "ann_pos_snn0": "ideal > 0, SNN 0",
          "snn_under": "SNN below ideal", "snn_over": "SNN above ideal"}


def _frame(reports: list[dict]) -> pd.DataFrame:
    rows = []
    for r in reports:
        for row in r["rows"]:
            rows.append({"experiment": r["experiment"], "seed": r["seed"], **row})
    return pd.DataFrame(rows)


def _all_layers(df: pd.DataFrame) -> pd.DataFrame:
    """Neuron-weighted shares over all layers, per (experiment, seed, tau, T), then mean over seeds."""
    cols = ["match", *ERROR_CATEGORIES]
    w = df.copy()
    w[cols] = w[cols].mul(w["neurons"], axis=0)
    g = w.groupby(["experiment", "seed", "tau", "T"])[cols + ["neurons"]].sum()
    g[cols] = g[cols].div(g["neurons"], axis=0)
    return g.groupby(["experiment", "tau", "T"])[cols].mean().reset_index()


def unevenness_markdown(reports: list[dict], name: str) -> str:
    df = _frame(reports)
    pct = lambda v: f"{100 * v:.2f}"  # noqa: E731
    parts = [f"# {name}: unevenness error per layer, QCFS (tau = 0) and SRP (tau > 0)", "", reports[0]["note"], "",
             "Shares in % of (neuron, image) pairs; T counts the steps after SRP's pre-run.", ""]
    for exp_id, g in _all_layers(df).groupby("experiment", sort=False):
        n = next(r["n_images"] for r in reports if r["experiment"] == exp_id)
        parts += [f"## {exp_id}: all spiking layers ({n} test images)", "",
                  tabulate([[int(r.tau), int(r.T), pct(r.match)] + [pct(getattr(r, c)) for c in ERROR_CATEGORIES]
                            for r in g.itertuples()],
                           headers=["tau", "T", "exact"] + [LABELS[c] for c in ERROR_CATEGORIES],
                           tablefmt="github", disable_numparse=True), ""]
        per_layer = df[df["experiment"] == exp_id].groupby(["tau", "T", "layer"])[
            ["match", *ERROR_CATEGORIES]].mean().reset_index()
        parts += [f"### {exp_id}: per layer", "",
                  tabulate([[int(r.tau), int(r.T), int(r.layer), pct(r.match)]
                            + [pct(getattr(r, c)) for c in ERROR_CATEGORIES] for r in per_layer.itertuples()],
                           headers=["tau", "T", "layer", "exact"] + [LABELS[c] for c in ERROR_CATEGORIES],
                           tablefmt="github", disable_numparse=True), ""]
    return "\n".join(parts)


def plot_unevenness(reports: list[dict], out_paths: list[Path], name: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    agg = _all_layers(_frame(reports))
    panels = list(agg.groupby(["experiment", "tau"], sort=False))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.6), squeeze=False, sharey=True)
    for ax, ((exp_id, tau), g) in zip(axes[0], panels):
        bottom = None
        xs = [str(int(t)) for t in g["T"]]
        for c in ERROR_CATEGORIES:
            vals = (g[c] * 100).to_numpy()
            ax.bar(xs, vals, bottom=bottom, label=LABELS[c])
            bottom = vals if bottom is None else bottom + vals
        ax.set_title(f"{exp_id}\n{'QCFS' if tau == 0 else f'SRP tau={tau}'}", fontsize=9)
        ax.set_xlabel("T")
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel("neurons with unevenness error (%)")
    axes[0][-1].legend(fontsize=7)
    fig.suptitle(f"{name}: unevenness error by category (all spiking layers)", fontsize=10)
    fig.tight_layout()
    save_figure(fig, out_paths, dpi=120)
