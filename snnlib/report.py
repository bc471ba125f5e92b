"""Aggregation: stage reports -> long-format result rows (CSV), markdown tables (tabulate), accuracy-vs-T plots.

Rows hold one (experiment, seed, method, variant, T) cell each, with its 95% Wilson interval over the evaluated
images and full provenance of both the evaluation and the training job. Tables show, per cell, the accuracy
(mean +- sample std over seeds with n, when several seeds ran) and the Wilson interval of the pooled (seed, image)
outcomes. `L` is the quantization level count of the trained activation (QCFS L, CQ T); ann_quantized_* /
ann_clip_* are the ANN with and without that quantization. Methods are labelled by their registry entries.
"""
from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd
from tabulate import tabulate

from .atomic import atomic_write_bytes, unreadable
from .efficiency import ROW_COLUMNS as EFFICIENCY_COLUMNS, at_T
from .metrics import HOROWITZ_45NM_FP32
from .stats import wilson_interval

PROVENANCE_COLUMNS = ["git_commit", "torch_version", "python_version", "numpy_version", "os", "device",
                      "cpu_model", "threads"]
ROW_COLUMNS = ["config", "budget", "experiment", "dataset", "model", "L", "seed", "method", "variant", "label",
               "recipe", "t_pre", "tau", "weight_bits", "T", "latency", "accuracy", "correct", "ci_low", "ci_high",
               "n_images", "subset", "ann_quantized_subset", "ann_clip_subset", "ann_quantized_full",
               "ann_clip_full", *EFFICIENCY_COLUMNS, "layer_firing_rates", "energy_costs", "config_hash",
               "data_sha256", *PROVENANCE_COLUMNS, *[f"train_{c}" for c in PROVENANCE_COLUMNS],
               "train_wall_s", "train_epoch_s", "eval_wall_s", "timestamp"]
ANN_KEYS = ("ann_quantized_subset", "ann_clip_subset", "ann_quantized_full", "ann_clip_full")
FLOAT_BITS = 32


def result_rows(train_reports: list[dict], eval_reports: list[dict], costs: dict = HOROWITZ_45NM_FP32) -> pd.DataFrame:
    """Join each evaluation with the training report of its network; one row per variant and T in 1..T_max. The
    efficiency columns (efficiency.py) are filled where the evaluation measured them, with energy from `costs`."""
    trained = {(r["experiment"], r["seed"], r["recipe"]): r for r in train_reports}
    rows = []
    for ev in eval_reports:
        if ev["provenance"].get("fixture_data"):
            continue  # plumbing runs on fixture files never become result rows
        tr = trained.get((ev["experiment"], ev["seed"], ev["recipe"]))
        if tr is None:
            raise ValueError(f"evaluation of {ev['experiment']} seed {ev['seed']} ({ev['method']}) has no training "
                             f"report of recipe {ev['recipe']}")
        n = ev["n_images"]
        prov, tprov = ev["provenance"], tr["provenance"]
        for var in ev["variants"]:
            for t, acc in enumerate(var["accuracy"], start=1):
                k = round(acc * n)
                lo, hi = wilson_interval(k, n)
                rows.append({
                    **{c: ev[c] for c in ("config", "experiment", "dataset", "model", "L", "seed", "method",
                                          "recipe", "n_images", "subset", "config_hash")},
                    "budget": ev.get("budget"), "variant": var["key"], "label": var["label"],
                    "t_pre": var["t_pre"], "tau": var["params"].get("tau", 0),
                    "weight_bits": var["params"].get("weight_bits", FLOAT_BITS), "T": t, "latency": var["t_pre"] + t,
                    "accuracy": acc, "correct": k, "ci_low": lo, "ci_high": hi,
                    **{c: tr.get(c) for c in ANN_KEYS},
                    **at_T(var.get("efficiency"), t, costs),
                    "data_sha256": ev.get("data_sha256"),
                    **{c: prov.get(c) for c in PROVENANCE_COLUMNS},
                    **{f"train_{c}": tprov.get(c) for c in PROVENANCE_COLUMNS},
                    **_training_jobs(tr),
                    "train_wall_s": round(tr["train_wall_s"], 2), "train_epoch_s": round(tr.get("epoch_seconds", 0), 2),
                    "eval_wall_s": round(ev["eval_wall_s"], 2), "timestamp": prov["timestamp"],
                })
    return pd.DataFrame(rows, columns=ROW_COLUMNS)


def _training_jobs(train_report: dict) -> dict:
    """Where the epochs were trained (each history row records its job): the commits, torch versions, devices
    and thread counts of every job that trained an epoch, ';'-joined, overriding the final job's provenance (a
    resumed training's last job did not train the earlier epochs)."""
    jobs = train_report.get("training_jobs") or []
    if not jobs:
        return {}
    join = lambda key: ";".join(dict.fromkeys(str(j.get(key)) for j in jobs))  # noqa: E731
    return {"train_git_commit": join("git_commit"), "train_torch_version": join("torch"),
            "train_threads": join("threads")}


def read_reports(paths) -> list[dict]:
    """The stage reports (JSON) at `paths`; one that cannot be parsed raises UnreadableError naming it."""
    reports = []
    for p in paths:
        try:
            reports.append(json.loads(Path(p).read_text()))
        except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError is a ValueError
            raise unreadable(p, "stage report", e) from None
    return reports


def cell(values: pd.Series, correct: pd.Series | None = None, n_images: pd.Series | None = None) -> str:
    """'98.52 [97.6, 99.1]' for one seed, '98.52 +- 0.10 (n=3) [98.3, 98.7]' for several; accuracies in percent.
    The bracket is the 95% Wilson interval of the pooled (seed, image) outcomes."""
    v = values.dropna() * 100
    if len(v) == 0:
        return "not run"
    text = f"{v.iloc[0]:.2f}" if len(v) == 1 else f"{v.mean():.2f} +- {v.std(ddof=1):.2f} (n={len(v)})"
    if correct is not None and n_images is not None and len(correct.dropna()):
        lo, hi = wilson_interval(int(correct.sum()), int(n_images.sum()))
        text += f" [{100 * lo:.1f}, {100 * hi:.1f}]"
    return text


def mean_std(values: pd.Series) -> str:
    """'98.52' for one seed, '98.52 +- 0.10 (n=3)' for several; accuracies in percent."""
    return cell(values)


def _levels(rows: pd.DataFrame) -> str:
    """The quantization level count as written in the config (a ReLU twin's rows have none, which makes the
    column float)."""
    levels = rows["L"].dropna()
    return str(int(levels.iloc[0])) if len(levels) else "none"


def _ann_labels(rows: pd.DataFrame) -> tuple[str, str]:
    """Labels of the quantized ANN and of its quantization-free limit, by the training recipe."""
    recipes = set(rows["recipe"])
    if recipes == {"cq"}:
        return (f"ANN, CQ clamp + quantize (T={_levels(rows)})",
                "ANN, clamp without quantization (SNN's T->inf limit)")
    if recipes == {"relu"}:
        return "ANN, ReLU twin", "ANN, ReLU twin (no quantization)"
    return "ANN, QCFS (paper's 'ANN accuracy')", "ANN, clip without quantization (SNN's T->inf limit)"


def _ann_subset(rows: pd.DataFrame, recipe: str, key: str) -> tuple[pd.Series, pd.Series, pd.Series]:
    r = rows[rows["recipe"] == recipe].drop_duplicates("seed")
    return r[key], (r[key] * r["n_images"]).round(), r["n_images"]


def _curves(rows: pd.DataFrame):
    """(label, method, variant, t_pre, rows) per curve, in the order the evaluations listed them."""
    order = rows[["method", "variant"]].drop_duplicates()
    for method, variant in order.itertuples(index=False):
        g = rows[(rows["method"] == method) & (rows["variant"] == variant)]
        yield g["label"].iloc[0], method, variant, int(g["t_pre"].iloc[0]), g


def experiment_table(rows: pd.DataFrame, report_T: list[int]) -> list[list[str]]:
    """Rows of one experiment's table: the ANN references of each trained network, then every method's curves at
    the report_T columns. A curve with a pre-run (t_pre > 0) is followed by the plain run of the same SNN at the
    same total latency t_pre + T, the fair comparison."""
    body = []
    for recipe in sorted(set(rows["recipe"])):
        quantized_label, clip_label = _ann_labels(rows[rows["recipe"] == recipe])
        body.append([quantized_label, cell(*_ann_subset(rows, recipe, "ann_quantized_subset"))] + [""] * len(report_T))
        if recipe != "relu":
            body.append([clip_label, cell(*_ann_subset(rows, recipe, "ann_clip_subset"))] + [""] * len(report_T))

    def at(g, t):
        sel = g[g["T"] == t]
        return cell(sel["accuracy"], sel["correct"], sel["n_images"]) if not sel.empty else "not run"

    for label, method, variant, t_pre, g in _curves(rows):
        body.append([label, ""] + [at(g, t) for t in report_T])
        if t_pre > 0:
            plain = plain_baseline(rows, method)
            if plain is not None:
                body.append([f"  {plain['label'].iloc[0]} at the same latency {t_pre}+T", ""]
                            + [at(plain, t_pre + t) for t in report_T])
    return body


def plain_baseline(rows: pd.DataFrame, method: str) -> pd.DataFrame | None:
    """The plain run (no pre-run) of the SNN a method evaluates: for SRP and COS, QCFS's own curve."""
    from .methods import get_method
    conversion = get_method(method).conversion
    plain = rows[(rows["method"] == conversion) & (rows["t_pre"] == 0) & (rows["weight_bits"] == FLOAT_BITS)]
    return None if plain.empty else plain


NO_ROWS = ("No result rows: every evaluation of this run used fixture files (SNNLIB_FIXTURE_DATA, plumbing "
           "only), and those never become results.")


def markdown_report(rows: pd.DataFrame, report_T: list[int], title: str) -> str:
    if rows.empty:
        return f"# {title}\n\n{NO_ROWS}\n"
    parts = [f"# {title}", "",
             "Accuracy in % on the evaluation images (mean +- sample std over seeds when n > 1), then in brackets "
             "the 95% Wilson interval over the evaluated (seed, image) outcomes. T counts the steps whose outputs "
             "are read out; a method with a pre-run (SRP's tau, COS's rho) adds it, so its total latency is "
             "t_pre + T, and its row is followed by the plain run at that same latency. "
             "Generated by the pipeline (`snakemake`); do not edit by hand.", ""]
    for exp_id, g in rows.groupby("experiment", sort=False):
        first = g.iloc[0]
        cq = (g["recipe"] == "cq").any()
        recipe = "cq" if cq else "qcfs" if (g["recipe"] == "qcfs").any() else first["recipe"]
        main = g[g["recipe"] == recipe].drop_duplicates("seed")
        parts += [f"## {exp_id}: {first['model']} on {first['dataset']} "
                  + (f"(CQ, T={_levels(main)})" if cq else f"(L={_levels(main)})"), "",
                  f"Evaluation images: {first['n_images']} ({first['subset']}); seeds: "
                  f"{sorted(g['seed'].unique().tolist())}; full-test-set ANN accuracy: "
                  + recipe.upper() + f" {mean_std(main['ann_quantized_full'])}, "
                  + ("clamp" if cq else "clip") + f" {mean_std(main['ann_clip_full'])}.", ""]
        if (g["weight_bits"] != FLOAT_BITS).any():
            parts += ["Low-precision rows: the same SNN with every hidden layer's weights and bias rounded to n-bit "
                      "symmetric codes (2^n - 1 levels, one scale per layer, float readout), no retraining.", ""]
        parts += [tabulate(experiment_table(g, report_T), headers=["", "ANN"] + [f"T={t}" for t in report_T],
                           tablefmt="github", disable_numparse=True), ""]
        prov = g.drop_duplicates(["seed", "recipe"])[["seed", "recipe", "git_commit", "train_git_commit",
                                                      "torch_version", "device", "train_device", "train_wall_s",
                                                      "config_hash", "data_sha256"]]
        parts += ["Provenance: " + "; ".join(
            f"seed {r.seed} ({r.recipe}): trained at {r.train_git_commit} on {r.train_device} in {r.train_wall_s}s, "
            f"evaluated at {r.git_commit}, torch {r.torch_version}, {r.device}, config {r.config_hash}, "
            f"images {r.data_sha256}" for r in prov.itertuples()), ""]
    return "\n".join(parts)


def save_figure(fig, out_paths, dpi: int | None = None) -> None:
    """Write `fig` to every path (creating folders; atomically, in the format its suffix names), then free it.
    The same figure gives the same bytes: an SVG carries no date and salts its element ids with a constant, so a
    regenerated committed plot is no change to git."""
    import matplotlib
    import matplotlib.pyplot as plt
    for p in out_paths:
        buf = io.BytesIO()
        fmt = Path(p).suffix.lstrip(".").lower()
        with matplotlib.rc_context({"svg.hashsalt": "snnlib"}):
            fig.savefig(buf, format=fmt, dpi=dpi, **({"metadata": {"Date": None}} if fmt == "svg" else {}))
        atomic_write_bytes(Path(p), buf.getvalue())
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
    """Accuracy against read-out steps T, every curve with its 95% Wilson band, and the two ANN references."""
    plot_accuracy(rows, out_paths, title, x="T",
                  xlabel="T (read-out steps; pre-run methods add t_pre); bands: 95% Wilson intervals", references=True)


def plot_accuracy(rows: pd.DataFrame, out_paths: list[Path], title: str, x: str, xlabel: str,
                  references: bool) -> None:
    """One panel per experiment, accuracy against column `x` (T, or the total latency t_pre + T) for every curve,
    with the Wilson band of its pooled (seed, image) outcomes; `references`: the ANN accuracies as lines."""
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
        for label, method, variant, t_pre, gm in _curves(g):
            curve = gm.groupby(x).agg(mean=("accuracy", "mean"), correct=("correct", "sum"), n=("n_images", "sum"))
            bounds = [wilson_interval(int(k), int(m)) for k, m in zip(curve["correct"], curve["n"])]
            bits = gm["weight_bits"].iloc[0]
            line, = ax.plot(curve.index, curve["mean"] * 100, label=label, ls="-" if bits == FLOAT_BITS else "--")
            ax.fill_between(curve.index, [100 * b[0] for b in bounds], [100 * b[1] for b in bounds],
                            color=line.get_color(), alpha=0.2, lw=0)
        if references:
            main_recipe = "cq" if (g["recipe"] == "cq").any() else sorted(set(g["recipe"]) - {"relu"} or {"relu"})[0]
            seeds = g[g["recipe"] == main_recipe].drop_duplicates("seed")
            quantized_label, clip_label = _ann_labels(g[g["recipe"] == main_recipe])
            ax.axhline(seeds["ann_quantized_subset"].mean() * 100, color="k", ls="--", lw=1,
                       label=quantized_label.split(" (paper")[0])
            ax.axhline(seeds["ann_clip_subset"].mean() * 100, color="gray", ls=":", lw=1.5,
                       label=clip_label.replace("without quantization (SNN's T->inf limit)", "(T->inf limit)"))
        ax.set_xscale("log", base=2)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("accuracy (%)")
        ax.set_title(f"{exp_id}: {g['model'].iloc[0]} / {g['dataset'].iloc[0]}", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7 if references else 6, loc="lower right")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    save_figure(fig, out_paths, dpi=120)
