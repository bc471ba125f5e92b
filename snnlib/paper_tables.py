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
