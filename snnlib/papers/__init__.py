"""The papers' numbers as data: one row per printed cell of QCFS, SRP and CQ, and of the COS
README table (see README.md here).

Cells the papers print as "-" are ``not reported``; cells we could not obtain are ``not retrieved``. Neither has a
value, and no value is ever filled in for them (docs/methods/qcfs.md, §9; docs/methods/cq.md, §6).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

PAPER_NUMBERS_PATH = Path(__file__).with_name("paper_numbers.csv")

COLUMNS = ["paper", "table", "source", "dataset", "arch", "method", "tau", "L", "weight_bits",
           "metric", "T", "T_label", "value", "status", "note"]
STATUSES = ("reported", "not reported", "not retrieved")
METRICS = ("ann", "snn")
INT_COLUMNS = ("tau", "L", "weight_bits", "T")
KEY = ["table", "dataset", "arch", "method", "tau", "weight_bits", "metric", "T"]


def _bad_row(raw: pd.DataFrame, i: int, why: str) -> ValueError:
    # i + 2: the header is line 1 of the CSV
    return ValueError(f"paper numbers, CSV line {i + 2}: {why}: {raw.iloc[i].to_dict()}")


def _parse(raw: pd.DataFrame) -> pd.DataFrame:
    df = raw.copy()
    for col in INT_COLUMNS + ("value",):
        parsed = pd.to_numeric(raw[col].where(raw[col] != ""), errors="coerce")
        garbage = raw[col].ne("") & parsed.isna()
        if garbage.any():
            raise _bad_row(raw, int(garbage.to_numpy().nonzero()[0][0]), f"{col} is not a number")
        if col in INT_COLUMNS:
            fractional = parsed.notna() & (parsed % 1 != 0)
            if fractional.any():
                raise _bad_row(raw, int(fractional.to_numpy().nonzero()[0][0]), f"{col} is not an integer")
            df[col] = parsed.astype("Int64")
        else:
            df[col] = parsed.astype(float)
    return df


def validate_paper_numbers(raw: pd.DataFrame) -> pd.DataFrame:
    """Check the rows read as strings and return them typed; ValueError names the first offending row."""
    if list(raw.columns) != COLUMNS:
        raise ValueError(f"paper numbers: columns {list(raw.columns)}, expected {COLUMNS}")
    for i, row in raw.iterrows():
        if row["status"] not in STATUSES:
            raise _bad_row(raw, i, f"status {row['status']!r} not in {STATUSES}")
        if row["metric"] not in METRICS:
            raise _bad_row(raw, i, f"metric {row['metric']!r} not in {METRICS}")
        if (row["value"] != "") != (row["status"] == "reported"):
            raise _bad_row(raw, i, "a value must be present exactly when status is 'reported'")
        if row["metric"] == "ann" and (row["T"] != "" or row["T_label"] != ""):
            raise _bad_row(raw, i, "an ann cell has no T")
        if row["T_label"] != "" and row["T"] == "":
            raise _bad_row(raw, i, "T_label without T")
    df = _parse(raw)
    dup = df.duplicated(KEY, keep=False)
    if dup.any():
        first = int(dup.to_numpy().nonzero()[0][0])
        raise _bad_row(raw, first, f"duplicate key {KEY}")
    return df


def load_paper_numbers(path: str | Path = PAPER_NUMBERS_PATH) -> pd.DataFrame:
    """All cells; `value` is float (NaN when missing), `T`, `tau`, `L`, `weight_bits` are nullable Int64."""
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    return validate_paper_numbers(raw)


def paper_cell(df: pd.DataFrame, table: str, arch: str, method: str, metric: str, T: int | None = None, *,
               dataset: str | None = None, tau: int | None = None, weight_bits: int | None = None):
    """The one row matching, or None. T=None matches cells without T (ann cells, CQ cells of unknown T).

    `dataset`, `tau` and `weight_bits` narrow the match where a table holds several (SRP-README has CIFAR-100 and
    ImageNet rows for VGG-16; CQ-abstract has VGG-19 at 32, 9 and 8 bits); an ambiguous match raises ValueError.
    """
    sel = (df["table"] == table) & (df["arch"] == arch) & (df["method"] == method) & (df["metric"] == metric)
    sel &= df["T"].isna() if T is None else (df["T"] == T).fillna(False)
    for col, want in (("dataset", dataset), ("tau", tau), ("weight_bits", weight_bits)):
        if want is not None:
            sel &= (df[col] == want).fillna(False)
    hits = df[sel]
    if len(hits) > 1:
        raise ValueError(f"paper_cell({table!r}, {arch!r}, {method!r}, {metric!r}, T={T}) matches {len(hits)} rows; "
                         f"give dataset, tau or weight_bits:\n{hits[KEY].to_string()}")
    return None if hits.empty else hits.iloc[0]
