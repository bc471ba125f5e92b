"""Regenerate the papers' tables beside our numbers: for every cell the paper's value, ours (mean +- std over the
seeds that ran, with the count), the difference and whether it is within a stated tolerance.

Cells: "not retrieved" where the paper's number is unknown to us, "not reported" where the paper printed "-",
"not run" where we have no result, "n/a" for other authors' methods this harness does not implement.
"""
from __future__ import annotations

import pandas as pd
from tabulate import tabulate

IMPLEMENTED = ("QCFS", "SRP", "CQ")
MATCH = ["table", "dataset", "arch", "method", "metric", "T"]


def _fmt(v: float) -> str:
    return f"{v:.2f}"


def compare(paper: pd.DataFrame, ours: pd.DataFrame, tolerance_pp: float) -> pd.DataFrame:
    """One row per paper cell. `ours`: columns table, dataset, arch, method, tau, metric, T, seed, value (%)."""
    out = []
    for _, cell in paper.iterrows():
        sel = ours
        for k in MATCH:
            sel = sel[sel[k].isna()] if pd.isna(cell[k]) else sel[sel[k] == cell[k]]
        if not pd.isna(cell["tau"]) and not sel.empty:
            sel = sel[sel["tau"] == cell["tau"]]
        if cell["method"] == "CQ" and "weight_bits" in sel.columns:  # unlabelled CQ cells are 32-bit
            sel = sel[sel["weight_bits"] == (32 if pd.isna(cell["weight_bits"]) else cell["weight_bits"])]
        vals = sel.drop_duplicates("seed")["value"].dropna()
        row = cell.to_dict()
        row.update(ours_n=len(vals), ours_mean=vals.mean() if len(vals) else float("nan"),
                   ours_std=vals.std(ddof=1) if len(vals) > 1 else float("nan"))
        if cell["status"] == "reported":
            row["paper_str"] = _fmt(cell["value"])
        else:
            row["paper_str"] = cell["status"]
        if len(vals) == 0:
            row["ours_str"] = "not run" if cell["method"] in IMPLEMENTED else "n/a"
        elif len(vals) == 1:
            row["ours_str"] = _fmt(row["ours_mean"])
        else:
            row["ours_str"] = f"{_fmt(row['ours_mean'])} +- {_fmt(row['ours_std'])} (n={len(vals)})"
        if len(vals) and cell["status"] == "reported":
            row["diff"] = row["ours_mean"] - cell["value"]
            row["within_tolerance"] = bool(abs(row["diff"]) <= tolerance_pp)
        else:
            row["diff"], row["within_tolerance"] = float("nan"), None
        out.append(row)
    return pd.DataFrame(out)


def _column(row) -> str:
    if row["metric"] == "ann":
        return "ANN"
    if pd.isna(row["T"]):  # CQ's cells: T not retrieved, split by weight precision
        return "SNN" + ("" if pd.isna(row["weight_bits"]) else f", {int(row['weight_bits'])}-bit weights")
    label = row["T_label"] if isinstance(row["T_label"], str) and row["T_label"] else f"T={int(row['T'])}"
    return label


def _cell(row) -> str:
    text = f"{row['paper_str']} / {row['ours_str']}"
    if row["within_tolerance"] is not None:
        text += f" ({row['diff']:+.2f}, {'within' if row['within_tolerance'] else 'OUTSIDE'})"
    return text


def table_markdown(cmp: pd.DataFrame, tolerance_pp: float) -> str:
    """Wide markdown of one compared table: one line per (dataset, arch, method, tau), one column per T."""
    first = cmp.iloc[0]
    columns = list(dict.fromkeys(_column(r) for _, r in cmp.iterrows()))
    lines = {}
    for _, r in cmp.iterrows():
        tau = "" if pd.isna(r["tau"]) else f" (tau={int(r['tau'])})"
        key = (r["dataset"], r["arch"], f"{r['method']}{tau}")
        lines.setdefault(key, {})[_column(r)] = _cell(r)
    body = [[*key, *(cells.get(c, "") for c in columns)] for key, cells in lines.items()]
    n_cmp = int(cmp["within_tolerance"].notna().sum())
    n_ok = int((cmp["within_tolerance"] == True).sum())  # noqa: E712  (None-aware)
    head = [f"## {first['table']}: {first['source']}", "",
            f"Each cell: paper / ours (ours - paper, within +-{tolerance_pp} pp or OUTSIDE). "
            f"{n_cmp} cells compared, {n_ok} within tolerance.", ""]
    return "\n".join(head + [tabulate(body, headers=["dataset", "arch", "method", *columns], tablefmt="github",
                                      disable_numparse=True), ""])


def paper_refs(config_paths) -> dict[tuple[str, str], dict]:
    """(config name, experiment) -> the experiment's `paper` block, from every config that has one."""
    from .config import load_config
    refs = {}
    for path in config_paths:
        cfg = load_config(path)
        for exp_id, exp in cfg["experiments"].items():
            if "paper" in exp:
                refs[(cfg["name"], exp_id)] = exp["paper"]
    return refs


# our methods that the papers' tables report, by the name the cited data uses; the others (the v0 = 0 ablation,
# MaxNorm, RobustNorm) have no paper cell
PAPER_METHODS = {"qcfs": "QCFS", "srp": "SRP", "cos": "COS"}


def ours_from_rows(rows: pd.DataFrame, refs: dict) -> pd.DataFrame:
    """Our result rows -> cells keyed like paper_numbers.csv (value in %). Smoke-budget rows never count.

    QCFS, SRP (keyed by tau) and COS (keyed by rho, in the cited data's `tau` column) rows become those methods'
    cells, CQ rows CQ cells; the ANN cell is the QCFS/CQ ANN's accuracy on the full test set. CQ's paper cells carry no T (not retrieved): ours is taken at T = the CQ window
    the network was trained for (column L)."""
    out = []
    rows = rows[rows["budget"].astype(object).fillna("") != "smoke"]
    for (config, exp_id), g in rows.groupby(["config", "experiment"]):
        ref = refs.get((config, exp_id))
        if ref is None:
            continue
        for table in ref["tables"]:
            base = {"table": table, "dataset": ref["dataset"], "arch": ref["arch"]}
            for seed, gs in g.groupby("seed"):
                method = "CQ" if (gs["method"] == "cq").any() else "QCFS"
                trained = gs[gs["recipe"] == method.lower()] if "recipe" in gs else gs
                if trained.empty:
                    continue
                ann = 100 * trained["ann_quantized_full"].iloc[0]
                out.append({**base, "method": method, "tau": None, "metric": "ann", "T": None, "seed": seed,
                            "weight_bits": 32 if method == "CQ" else None, "value": ann})
                for method, name in (("srp", "SRP"), ("cos", "COS")):  # their tables repeat the ANN per tau/rho
                    for t_pre in sorted(set(gs.loc[gs["method"] == method, "t_pre"])):
                        out.append({**base, "method": name, "tau": int(t_pre), "metric": "ann", "T": None,
                                    "seed": seed, "weight_bits": None, "value": ann})
                for _, r in gs.iterrows():
                    if r["method"] == "cq":
                        if r["T"] != r["L"]:
                            continue
                        out.append({**base, "method": "CQ", "tau": None, "metric": "snn", "T": None, "seed": seed,
                                    "weight_bits": int(r["weight_bits"]), "value": 100 * r["accuracy"]})
                    elif r["method"] in PAPER_METHODS:
                        # the cited tables key a pre-run method's cells by its pre-run length in `tau` (COS: rho)
                        name = PAPER_METHODS[r["method"]]
                        out.append({**base, "method": name, "tau": None if name == "QCFS" else int(r["t_pre"]),
                                    "metric": "snn", "T": int(r["T"]), "seed": seed, "weight_bits": None,
                                    "value": 100 * r["accuracy"]})
    cols = ["table", "dataset", "arch", "method", "tau", "metric", "T", "seed", "weight_bits", "value"]
    return pd.DataFrame(out, columns=cols)
