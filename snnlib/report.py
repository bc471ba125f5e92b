"""Aggregation: stage reports -> long-format result rows (CSV), markdown tables (tabulate), accuracy-vs-T plots.

Rows hold one (experiment, seed, method, tau, weight_bits, T) cell each, with provenance; tables show mean +- std
over seeds. Methods: qcfs and srp (QCFS ANN), cq (CQ ANN, docs/cq.md). `L` is the quantization level count of the
trained activation (QCFS L, CQ T); ann_quantized_* / ann_clip_* are the ANN with and without that quantization.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from tabulate import tabulate

from .efficiency import ROW_COLUMNS as EFFICIENCY_COLUMNS, at_T
from .metrics import HOROWITZ_45NM_FP32

ROW_COLUMNS = ["config", "budget", "experiment", "dataset", "model", "L", "seed", "method", "tau", "srp_rule", "weight_bits",
               "T", "latency", "accuracy", "n_images", "subset", "ann_quantized_subset", "ann_clip_subset",
               "ann_quantized_full", "ann_clip_full", *EFFICIENCY_COLUMNS, "layer_firing_rates", "energy_costs",
               "config_hash", "git_commit", "torch_version", "device",
               "train_wall_s", "eval_wall_s", "timestamp"]
ANN_KEYS = ("ann_quantized_subset", "ann_clip_subset", "ann_quantized_full", "ann_clip_full")
FLOAT_BITS = 32


def _ann_value(train_report: dict, key: str):
    """ANN accuracy of a training report; QCFS reports written before the generalisation say ann_qcfs_*."""
    return train_report.get(key, train_report.get(key.replace("quantized", "qcfs")))


def _accuracy_curves(ev: dict) -> list[tuple[int, list]]:
    """(weight_bits, accuracy list) of an evaluation: the float32 curve, then CQ's low-precision-weight curves."""
    curves = [(FLOAT_BITS, ev["accuracy"])]
    for bits, acc in ev.get("accuracy_by_weight_bits", {}).items():
        if int(bits) != FLOAT_BITS:
            curves.append((int(bits), acc))
    return curves


def result_rows(train_reports: list[dict], eval_reports: list[dict], costs: dict = HOROWITZ_45NM_FP32) -> pd.DataFrame:
    """Join each evaluation with its training report; one row per T in 1..T_max. The efficiency columns
    (efficiency.py) are filled for float32 weights where the evaluation measured them, with energy from `costs`."""
    trained = {(r["experiment"], r["seed"]): r for r in train_reports}
    rows = []
    for ev in eval_reports:
        if ev["provenance"].get("fixture_data"):
            continue  # plumbing runs on fixture files never become result rows
        tr = trained.get((ev["experiment"], ev["seed"]))
        if tr is None:
            raise ValueError(f"evaluation of {ev['experiment']} seed {ev['seed']} has no training report")
        for bits, curve in _accuracy_curves(ev):
            for t, acc in enumerate(curve, start=1):
                rows.append({
                    **{k: ev[k] for k in ("config", "experiment", "dataset", "model", "L", "seed", "method", "tau",
                                          "srp_rule", "n_images", "subset", "config_hash")},
                    "budget": ev.get("budget"), "weight_bits": bits, "T": t, "latency": ev["tau"] + t,
                    "accuracy": acc,
                    **{k: _ann_value(tr, k) for k in ANN_KEYS},
                    **at_T(ev.get("efficiency") if bits == FLOAT_BITS else None, t, costs),
                    "git_commit": ev["provenance"]["git_commit"], "torch_version": ev["provenance"]["torch_version"],
                    "device": ev["provenance"]["device"], "train_wall_s": round(tr["train_wall_s"], 2),
                    "eval_wall_s": round(ev["eval_wall_s"], 2), "timestamp": ev["provenance"]["timestamp"],
                })
    return pd.DataFrame(rows, columns=ROW_COLUMNS)


def read_reports(paths) -> list[dict]:
    return [json.loads(Path(p).read_text()) for p in paths]


def mean_std(values: pd.Series) -> str:
    """'98.52' for one seed, '98.52 +- 0.10 (n=3)' for several; accuracies in percent."""
    v = values.dropna() * 100
    if len(v) == 0:
        return "not run"
    if len(v) == 1:
        return f"{v.iloc[0]:.2f}"
    return f"{v.mean():.2f} +- {v.std(ddof=1):.2f} (n={len(v)})"


def _method_label(method: str, tau: int, rule, levels=None, weight_bits=FLOAT_BITS) -> str:
    if method == "cq":
        label = f"SNN, CQ (T={levels})"
    else:
        label = "SNN, QCFS" if method == "qcfs" else f"SNN, SRP tau={tau} ({rule} rule)"
    return label if weight_bits == FLOAT_BITS else f"{label}, {weight_bits}-bit weights"


def _ann_labels(rows: pd.DataFrame) -> tuple[str, str]:
    """Labels of the quantized ANN and of its quantization-free limit, by the experiment's training method."""
    if (rows["method"] == "cq").any():
        return (f"ANN, CQ clamp + quantize (T={rows['L'].iloc[0]})",
                "ANN, clamp without quantization (SNN's T->inf limit)")
    return "ANN, QCFS (paper's 'ANN accuracy')", "ANN, clip without quantization (SNN's T->inf limit)"


def _curves(rows: pd.DataFrame):
    """(label, method, tau, weight_bits, rows) per curve; float32 weights before low-precision ones."""
    groups = rows.groupby(["method", "tau", "weight_bits"], sort=True)
    for (method, tau, bits), g in sorted(groups, key=lambda kv: (kv[0][0], kv[0][1], -kv[0][2])):
        yield _method_label(method, tau, g["srp_rule"].iloc[0], g["L"].iloc[0], bits), method, tau, bits, g


def experiment_table(rows: pd.DataFrame, report_T: list[int]) -> list[list[str]]:
    """Rows of one experiment's table: the two ANN references, then every method at the report_T columns.

    For SRP also 'QCFS at tau+T': plain QCFS at the same total latency, the fair comparison (spec §3.5)."""
    seeds = rows.drop_duplicates("seed")
    quantized_label, clip_label = _ann_labels(rows)
    body = [[quantized_label, mean_std(seeds["ann_quantized_subset"])] + [""] * len(report_T),
            [clip_label, mean_std(seeds["ann_clip_subset"])] + [""] * len(report_T)]
    qcfs = rows[(rows["method"] == "qcfs") & (rows["weight_bits"] == FLOAT_BITS)]
    T_max = int(qcfs["T"].max()) if not qcfs.empty else 0
    for label, method, tau, bits, g in _curves(rows):
        g_max = int(g["T"].max())
        body.append([label, ""] + [mean_std(g[g["T"] == t]["accuracy"]) if t <= g_max else "not run"
                                   for t in report_T])
        if method == "srp":
            body.append([f"  QCFS at the same latency tau+T = {tau}+T", ""]
                        + [mean_std(qcfs[qcfs["T"] == tau + t]["accuracy"]) if not qcfs.empty and tau + t <= T_max
                           else "not run" for t in report_T])
    return body


NO_ROWS = ("No result rows: every evaluation of this run used fixture files (SNNLIB_FIXTURE_DATA, plumbing "
           "only), and those never become results.")


def markdown_report(rows: pd.DataFrame, report_T: list[int], title: str) -> str:
    if rows.empty:
        return f"# {title}\n\n{NO_ROWS}\n"
    parts = [f"# {title}", "",
             "Accuracy in % on the evaluation images (mean +- sample std over seeds when n > 1). T counts the "
             "steps whose outputs are read out; SRP adds tau pre-run steps, so its total latency is tau + T. "
             "Generated by the pipeline (`snakemake`); do not edit by hand.", ""]
    for exp_id, g in rows.groupby("experiment", sort=False):
        first = g.iloc[0]
        cq = (g["method"] == "cq").any()
        parts += [f"## {exp_id}: {first['model']} on {first['dataset']} "
                  + (f"(CQ, T={first['L']})" if cq else f"(L={first['L']})"), "",
                  f"Evaluation images: {first['n_images']} ({first['subset']}); seeds: "
                  f"{sorted(g['seed'].unique().tolist())}; full-test-set ANN accuracy: "
                  + ("CQ" if cq else "QCFS") + f" {mean_std(g.drop_duplicates('seed')['ann_quantized_full'])}, "
                  + ("clamp" if cq else "clip") + f" {mean_std(g.drop_duplicates('seed')['ann_clip_full'])}.", ""]
        if cq and (g["weight_bits"] != FLOAT_BITS).any():
            parts += ["Low-precision rows: the same SNN with every hidden layer's weights and bias rounded to n-bit "
                      "symmetric codes (2^n - 1 levels, one scale per layer, float readout), no retraining.", ""]
        parts += [tabulate(experiment_table(g, report_T), headers=["", "ANN"] + [f"T={t}" for t in report_T],
                           tablefmt="github", disable_numparse=True), ""]
        prov = g.drop_duplicates("seed")[["seed", "git_commit", "torch_version", "device", "train_wall_s",
                                          "config_hash"]]
        parts += ["Provenance: " + "; ".join(
            f"seed {r.seed}: commit {r.git_commit}, torch {r.torch_version}, {r.device}, training {r.train_wall_s}s, "
            f"config {r.config_hash}" for r in prov.itertuples()), ""]
    return "\n".join(parts)


def save_figure(fig, out_paths, dpi: int | None = None) -> None:
    """Write `fig` to every path (creating folders), then free it."""
    import matplotlib.pyplot as plt
    for p in out_paths:
        Path(p).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(p, dpi=dpi)
    plt.close(fig)


def save_message_figure(text: str, out_paths, fontsize: int = 8, dpi: int | None = None) -> None:
    """A small figure that only says `text`: the plot of a run that has nothing to plot yet."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig = plt.figure(figsize=(6, 1.5))
    fig.text(0.5, 0.5, text, ha="center", va="center", wrap=True, fontsize=fontsize)
    save_figure(fig, out_paths, dpi)


def plot_accuracy_vs_T(rows: pd.DataFrame, out_paths: list[Path], title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    exps = list(dict.fromkeys(rows["experiment"]))
    if not exps:
        save_message_figure(NO_ROWS, out_paths)
        return
    fig, axes = plt.subplots(1, len(exps), figsize=(5.2 * len(exps), 4), squeeze=False)
    for ax, exp_id in zip(axes[0], exps):
        g = rows[rows["experiment"] == exp_id]
        for label, method, tau, bits, gm in _curves(g):
            curve = gm.groupby("T")["accuracy"].agg(["mean", "std"]).fillna(0) * 100
            line, = ax.plot(curve.index, curve["mean"], label=label, ls="-" if bits == FLOAT_BITS else "--")
            ax.fill_between(curve.index, curve["mean"] - curve["std"], curve["mean"] + curve["std"],
                            color=line.get_color(), alpha=0.2)
        seeds = g.drop_duplicates("seed")
        quantized_label, clip_label = _ann_labels(g)
        ax.axhline(seeds["ann_quantized_subset"].mean() * 100, color="k", ls="--", lw=1,
                   label=quantized_label.split(" (paper")[0])
        ax.axhline(seeds["ann_clip_subset"].mean() * 100, color="gray", ls=":", lw=1.5,
                   label=clip_label.replace("without quantization (SNN's T->inf limit)", "(T->inf limit)"))
        ax.set_xscale("log", base=2)
        ax.set_xlabel("T (read-out steps; SRP adds tau pre-run steps)")
        ax.set_ylabel("accuracy (%)")
        ax.set_title(f"{exp_id}: {g['model'].iloc[0]} / {g['dataset'].iloc[0]}", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    save_figure(fig, out_paths, dpi=120)
