"""snnlib/papers/paper_numbers.csv against the papers' printed tables, cell for cell, and the loader's checks.

The printed tables are restated below as markdown, transcribed from their sources (QCFS's OpenReview submission,
Tables 1-3; the SRP README table; the ImageNet cells [H-MT] Table 1 cites for SRP and QCFS; the CQ abstract), as
tests/test_data.py restates the published data facts: the test does not trust the file it tests. A CSV edit that
drifts from a printed cell, adds a cell or drops one fails here, in both directions. docs/methods/qcfs.md, §9 and
docs/methods/cq.md, §6 describe the sources.
"""
from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd
import pytest

from snnlib.papers import KEY, PAPER_NUMBERS_PATH, load_paper_numbers, paper_cell

ARCHS = {"VGG-16": "vgg16", "ResNet-18": "resnet18", "ResNet-20": "resnet20", "ResNet-34": "resnet34",
         "CIFARNet": "cifarnet"}

# As printed: "-" = the paper's own "not reported"; ¹ = "RTS and SNNC-AP use altered ResNet-18, while ours use
# standard ResNet-18" (QCFS Table 1's footnote).
QCFS_T1 = """
| Arch | Method | ANN | T=2 | T=4 | T=8 | T=16 | T=32 | T=64 | T≥512 |
|---|---|---|---|---|---|---|---|---|---|
| VGG-16 | RMP | 93.63% | - | - | - | - | 60.30% | 90.35% | 93.63% |
| VGG-16 | TSC | 93.63% | - | - | - | - | - | 92.79% | 93.63% |
| VGG-16 | RTS | 95.72% | - | - | - | - | 76.24% | 90.64% | 95.73% |
| VGG-16 | RNL | 92.82% | - | - | - | 57.90% | 85.40% | 91.15% | 92.95% |
| VGG-16 | SNNC-AP | 95.72% | - | - | - | - | 93.71% | 95.14% | 95.79% |
| VGG-16 | QCFS | 95.52% | 91.18% | 93.96% | 94.95% | 95.40% | 95.54% | 95.55% | 95.59% |
| ResNet-20 | RMP | 91.47% | - | - | - | - | - | - | 91.36% |
| ResNet-20 | TSC | 91.47% | - | - | - | - | - | 69.38% | 91.42% |
| ResNet-20 | QCFS | 91.77% | 73.20% | 83.75% | 89.55% | 91.62% | 92.24% | 92.35% | 92.41% |
| ResNet-18 | RTS¹ | 95.46% | - | - | - | - | 84.06% | 92.48% | 94.42% |
| ResNet-18 | SNNC-AP¹ | 95.46% | - | - | - | - | 94.78% | 95.30% | 95.45% |
| ResNet-18 | QCFS | 96.04% | 75.44% | 90.43% | 94.82% | 95.92% | 96.08% | 96.06% | 96.06% |
"""

QCFS_T2 = """
| Arch | Method | ANN | T=2 | T=4 | T=8 | T=16 | T=32 | T=64 | T≥512 |
|---|---|---|---|---|---|---|---|---|---|
| VGG-16 | RMP | 71.22% | - | - | - | - | - | - | 70.93% |
| VGG-16 | TSC | 71.22% | - | - | - | - | - | - | 70.97% |
| VGG-16 | RTS | 77.89% | - | - | - | - | 7.64% | 21.84% | 77.71% |
| VGG-16 | SNNC-AP | 77.89% | - | - | - | - | 73.55% | 76.64% | 77.87% |
| VGG-16 | QCFS | 76.28% | 63.79% | 69.62% | 73.96% | 76.24% | 77.01% | 77.10% | 77.08% |
| ResNet-20 | RMP | 68.72% | - | - | - | - | 27.64% | 46.91% | 67.82% |
| ResNet-20 | TSC | 68.72% | - | - | - | - | - | - | 68.18% |
| ResNet-20 | QCFS | 69.94% | 19.96% | 34.14% | 55.37% | 67.33% | 69.82% | 70.49% | 70.50% |
| ResNet-18 | RTS | 77.16% | - | - | - | - | 51.27% | 70.12% | 77.19% |
| ResNet-18 | SNNC-AP | 77.16% | - | - | - | - | 76.32% | 77.29% | 77.25% |
| ResNet-18 | QCFS | 78.80% | 70.79% | 75.67% | 78.48% | 79.48% | 79.62% | 79.54% | 79.61% |
"""

QCFS_T3 = """
| Model | Method | Arch | SNN acc | Timesteps |
|---|---|---|---|---|
| HC | Hybrid | VGG-16 | 92.02 | 200 |
| STBP | Backprop | CIFARNet | 90.53 | 12 |
| DT | Backprop | CIFARNet | 90.98 | 8 |
| TSSL | Backprop | CIFARNet | 91.41 | 5 |
| QCFS | ANN-SNN | VGG-16 | 93.96 | 4 |
| QCFS | ANN-SNN | CIFARNet (as Wu et al. 2018) | 94.73 | 4 |
"""

# "Para" is tau; T counts only the steps after the tau pre-run steps.
SRP_README = """
| Dataset | Arch | Para | ANN | T=1 | T=2 | T=4 | T=8 |
|---|---|---|---|---|---|---|---|
| CIFAR-100 | VGG-16 | τ=4 | 76.28% | 71.52% | 74.31% | 75.42% | 76.25% |
| CIFAR-100 | ResNet-20 | τ=4 | 69.94% | 46.48% | 53.96% | 59.34% | 62.94% |
| ImageNet | VGG-16 | τ=14 | 74.29% | 50.37% | 61.37% | 66.47% | 68.37% |
| ImageNet | ResNet-34 | τ=8 | 74.32% | 57.78% | 64.32% | 66.71% | 67.62% |
"""

SRP_IMAGENET_CITED = """
| Arch | ANN | T=4 | T=64 |
|---|---|---|---|
| ResNet-34 | 74.32 | 66.71 | 68.61 |
| VGG-16 | 74.29 | 66.47 | 69.43 |
"""

QCFS_IMAGENET_CITED = """
| Arch | ANN | T=64 |
|---|---|---|
| ResNet-34 | 74.32 | 72.35 |
| VGG-16 | 74.29 | 72.85 |
"""

# "–": a quantized copy of the 32-bit CNN, no CNN cell of its own.
CQ_ABSTRACT = """
| network | dataset | CNN acc. | SNN acc. | weights | T |
|---|---|---|---|---|---|
| VGG-* (7 layers) | CIFAR-10 | not retrieved | 94.16 % | 32-bit float | not retrieved |
| VGG-19 ("21 layer") | CIFAR-10 | not retrieved | 93.44 % | 32-bit float | not retrieved |
| VGG-19 | CIFAR-10 | – | 93.43 % | 9-bit, no retraining | not retrieved |
| VGG-19 | CIFAR-10 | – | 92.82 % | 8-bit, no retraining | not retrieved |
"""


@pytest.fixture(scope="module")
def numbers() -> pd.DataFrame:
    return load_paper_numbers()


def _table(text: str) -> list[dict[str, str]]:
    """A markdown table as dicts keyed by its header."""
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")]
            for line in text.strip().splitlines() if line.strip().startswith("|")]
    header, sep, *body = rows
    assert all(set(s) <= set("-: ") for s in sep), "no table separator under the header"
    assert all(len(row) == len(header) for row in body), "a row with the wrong number of cells"
    return [dict(zip(header, row)) for row in body]


def _cell(text: str) -> tuple[float | None, str]:
    text = text.replace("*", "").strip()
    if text in {"-", "–"}:
        return None, "not reported"
    return float(text.rstrip("%").strip()), "reported"


def _arch(text: str) -> str:
    return ARCHS[text.split(" (")[0]]


def _t_of(column: str) -> int:
    return int(re.fullmatch(r"T(?:=|≥)(\d+)", column).group(1))


def _printed_cells() -> dict[tuple, tuple[float | None, str]]:
    """Every cell of QCFS Tables 1-3, the SRP README table and the two [H-MT] citations, keyed like the CSV."""
    cells = {}

    def put(key, cell):
        assert key not in cells, f"printed cell {key} twice"
        cells[key] = cell

    for text, table, dataset in [(QCFS_T1, "QCFS-T1", "cifar10"), (QCFS_T2, "QCFS-T2", "cifar100")]:
        for row in _table(text):
            method = row.pop("Method").rstrip("¹")
            arch = _arch(row.pop("Arch"))
            put((table, dataset, arch, method, None, "ann", None), _cell(row.pop("ANN")))
            for column, value in row.items():
                put((table, dataset, arch, method, None, "snn", _t_of(column)), _cell(value))

    for row in _table(QCFS_T3):
        put(("QCFS-T3", "cifar10", _arch(row["Arch"]), row["Model"], None, "snn", int(row["Timesteps"])),
            _cell(row["SNN acc"]))

    for row in _table(SRP_README):
        dataset = {"CIFAR-100": "cifar100", "ImageNet": "imagenet"}[row.pop("Dataset")]
        arch = _arch(row.pop("Arch"))
        tau = int(row.pop("Para").removeprefix("τ="))
        put(("SRP-README", dataset, arch, "SRP", tau, "ann", None), _cell(row.pop("ANN")))
        for column, value in row.items():
            put(("SRP-README", dataset, arch, "SRP", tau, "snn", _t_of(column)), _cell(value))

    for text, table, method in [(SRP_IMAGENET_CITED, "SRP-ImageNet-cited", "SRP"),
                                (QCFS_IMAGENET_CITED, "QCFS-ImageNet-cited", "QCFS")]:
        for row in _table(text):
            arch = _arch(row.pop("Arch"))
            put((table, "imagenet", arch, method, None, "ann", None), _cell(row.pop("ANN")))
            for column, value in row.items():
                put((table, "imagenet", arch, method, None, "snn", _t_of(column)), _cell(value))
    return cells


def _csv_cells(df: pd.DataFrame, tables) -> dict[tuple, tuple[float | None, str]]:
    cells = {}
    for row in df[df["table"].isin(tables)].itertuples(index=False):
        key = (row.table, row.dataset, row.arch, row.method, None if pd.isna(row.tau) else int(row.tau),
               row.metric, None if pd.isna(row.T) else int(row.T))
        cells[key] = (None if math.isnan(row.value) else row.value, row.status)
    return cells


def test_csv_matches_the_printed_tables_cell_for_cell(numbers):
    printed = _printed_cells()
    csv = _csv_cells(numbers, {key[0] for key in printed})
    assert len(printed) > 200  # the parser found the tables, not a fragment of them
    missing = sorted(set(printed) - set(csv), key=str)
    extra = sorted(set(csv) - set(printed), key=str)
    differ = {k: (printed[k], csv[k]) for k in set(printed) & set(csv) if printed[k] != csv[k]}
    assert not missing, f"printed cells missing from the CSV: {missing}"
    assert not extra, f"CSV cells not in the printed tables: {extra}"
    assert not differ, f"(printed, CSV) differ: {differ}"


def test_qcfs_table_shapes(numbers):
    # 12 / 11 method rows x (ANN + 7 T columns); T>=512 is stored as T=512 with its label
    for table, n_rows in (("QCFS-T1", 12), ("QCFS-T2", 11)):
        sub = numbers[numbers["table"] == table]
        assert len(sub) == n_rows * 8
        assert set(sub.loc[sub["T"] == 512, "T_label"]) == {"T>=512"}
        assert set(sub.loc[(sub["T"] != 512).fillna(True), "T_label"]) == {""}
    altered = numbers[(numbers["table"] == "QCFS-T1") & (numbers["arch"] == "resnet18")
                      & numbers["method"].isin(["RTS", "SNNC-AP"])]
    assert altered["note"].str.contains("altered ResNet-18").all()


def test_srp_rows_carry_tau_and_L_from_the_setup(numbers):
    readme = numbers[numbers["table"] == "SRP-README"]
    got = {(r.dataset, r.arch): (int(r.tau), int(r.L)) for r in readme.itertuples()}
    assert got == {("cifar100", "vgg16"): (4, 4), ("cifar100", "resnet20"): (4, 8),
                   ("imagenet", "vgg16"): (14, 16), ("imagenet", "resnet34"): (8, 8)}
    assert readme.loc[readme["metric"] == "snn", "note"].str.contains("excludes tau").all()
    # the abstract's headline: 64.32 % on ImageNet with 10 steps = tau 8 + T 2, ResNet-34
    headline = paper_cell(numbers, "SRP-README", "resnet34", "SRP", "snn", 2, dataset="imagenet")
    assert headline["value"] == 64.32 and headline["tau"] + headline["T"] == 10


# The COS README table (hzc1208/ANN2SNN_COS, top-1 %; T excludes the rho calibration steps), transcribed here
# directly: (dataset, arch) -> (rho, L or None where the README does not state it, ANN, {T: SNN}).
COS_README = {
    ("cifar100", "vgg16"): (4, 4, 76.28, {1: 74.24, 2: 76.03, 4: 76.26, 8: 76.52}),
    ("cifar100", "resnet20"): (4, None, 69.97, {1: 59.22, 2: 64.21, 4: 65.18, 8: 67.17}),
    ("imagenet", "vgg16"): (8, 16, 74.19, {1: 63.84, 2: 70.59, 4: 72.94, 8: 73.82}),
    ("imagenet", "resnet34"): (8, None, 74.22, {1: 69.11, 2: 72.66, 4: 73.81, 8: 74.17}),
}


def test_cos_readme_rows(numbers):
    sub = numbers[numbers["table"] == "COS-README"]
    assert len(sub) == 4 * 5 and (sub["paper"] == "COS").all() and (sub["method"] == "COS").all()
    assert (sub["status"] == "reported").all() and (sub["T_label"] == "").all()
    got = {}
    for r in sub.itertuples():
        got.setdefault((r.dataset, r.arch), [int(r.tau), None if pd.isna(r.L) else int(r.L), None, {}])
        if r.metric == "ann":
            got[(r.dataset, r.arch)][2] = r.value
        else:
            got[(r.dataset, r.arch)][3][int(r.T)] = r.value
    assert {k: tuple(v) for k, v in got.items()} == COS_README
    # the tau column holds rho, and every SNN cell says that T excludes it
    assert sub.loc[sub["metric"] == "snn", "note"].str.contains("excludes rho").all()
    assert sub["note"].str.contains("tau holds COS's rho").all()
    cell = paper_cell(numbers, "COS-README", "vgg16", "COS", "snn", 1, dataset="cifar100")
    assert cell["value"] == 74.24 and cell["tau"] == 4


def test_srp_cifar10_is_not_retrieved(numbers):
    sub = numbers[(numbers["paper"] == "SRP") & (numbers["dataset"] == "cifar10")]
    assert set(sub["table"]) == {"SRP-CIFAR10"}
    assert {(r.arch, r.metric, None if pd.isna(r.T) else int(r.T)) for r in sub.itertuples()} == {
        (arch, metric, T) for arch in ("vgg16", "resnet18", "resnet20")
        for metric, T in [("ann", None), ("snn", 1), ("snn", 2), ("snn", 4), ("snn", 8)]}
    assert (sub["status"] == "not retrieved").all() and sub["value"].isna().all()


def test_cq_abstract_matches_the_abstract(numbers):
    nets = {"VGG-*": "vgg_star", "VGG-19": "vgg19"}
    expected = {}
    for row in _table(CQ_ABSTRACT):
        arch = nets[row["network"].split(" (")[0]]
        bits = int(re.match(r"(\d+)-bit", row["weights"]).group(1))
        assert row["dataset"] == "CIFAR-10" and row["T"] == "not retrieved"
        expected[(arch, bits, "snn")] = (float(row["SNN acc."].strip("* %")), "reported")
        if row["CNN acc."] == "not retrieved":
            expected[(arch, bits, "ann")] = (None, "not retrieved")
        else:
            assert row["CNN acc."] == "–"  # a quantized copy of the 32-bit CNN: no CNN cell of its own
    sub = numbers[numbers["table"] == "CQ-abstract"]
    got = {(r.arch, int(r.weight_bits), r.metric): (None if math.isnan(r.value) else r.value, r.status)
           for r in sub.itertuples()}
    assert got == expected
    assert sub["T"].isna().all()


def test_cq_table2_has_no_number(numbers):
    sub = numbers[numbers["table"] == "CQ-T2"]
    assert set(zip(sub["dataset"], sub["arch"])) == {
        ("mnist", "lenet_star"), ("cifar10", "vgg_star"), ("cifar100", "vgg_star"),
        ("cifar10", "vgg11"), ("cifar10", "vgg13"), ("cifar10", "vgg16"), ("cifar10", "vgg19")}
    assert len(sub) == 14 and set(sub["metric"]) == {"ann", "snn"}
    assert sub["value"].isna().all() and sub["T"].isna().all()
    assert (sub["status"] == "not retrieved").all()


def test_only_the_papers_tables(numbers):
    # third-party reproductions (docs/methods/qcfs.md, §9) are not the papers' numbers and stay out
    assert set(numbers["table"]) == {"QCFS-T1", "QCFS-T2", "QCFS-T3", "QCFS-ImageNet-cited", "SRP-README",
                                     "SRP-ImageNet-cited", "SRP-CIFAR10", "CQ-abstract", "CQ-T2", "COS-README"}
    assert set(numbers["paper"]) == {"QCFS", "SRP", "CQ", "COS"}
    assert (numbers["source"] != "").all()


def test_loaded_dtypes(numbers):
    assert numbers["value"].dtype == float
    for col in ("T", "tau", "L", "weight_bits"):
        assert str(numbers[col].dtype) == "Int64"
    assert numbers.loc[numbers["status"] != "reported", "value"].isna().all()


def test_paper_cell(numbers):
    assert paper_cell(numbers, "QCFS-T1", "vgg16", "QCFS", "ann")["value"] == 95.52
    assert paper_cell(numbers, "QCFS-T1", "vgg16", "QCFS", "snn", 4)["value"] == 93.96
    assert paper_cell(numbers, "QCFS-T1", "vgg16", "QCFS", "snn", 1) is None
    dash = paper_cell(numbers, "QCFS-T1", "vgg16", "TSC", "snn", 32)
    assert dash["status"] == "not reported" and math.isnan(dash["value"])
    with pytest.raises(ValueError, match="matches 2 rows"):
        paper_cell(numbers, "SRP-README", "vgg16", "SRP", "snn", 2)
    assert paper_cell(numbers, "CQ-abstract", "vgg19", "CQ", "snn", weight_bits=9)["value"] == 93.43


# --- the loader's validation -------------------------------------------------------------------------------------

def _write_edited(tmp_path: Path, edit) -> Path:
    raw = pd.read_csv(PAPER_NUMBERS_PATH, dtype=str, keep_default_na=False)
    edit(raw)
    path = tmp_path / "paper_numbers.csv"
    raw.to_csv(path, index=False)
    return path


def _first(raw: pd.DataFrame, **match) -> int:
    sel = pd.Series(True, index=raw.index)
    for col, want in match.items():
        sel &= raw[col] == want
    return int(sel.idxmax())


def test_unedited_copy_loads(tmp_path):
    assert len(load_paper_numbers(_write_edited(tmp_path, lambda raw: None))) == len(load_paper_numbers())


def test_bad_status_is_rejected(tmp_path):
    def edit(raw):
        raw.loc[_first(raw, status="reported"), "status"] = "approximate"
    with pytest.raises(ValueError, match="status 'approximate'"):
        load_paper_numbers(_write_edited(tmp_path, edit))


def test_value_with_not_retrieved_is_rejected(tmp_path):
    def edit(raw):
        raw.loc[_first(raw, table="CQ-T2"), "value"] = "90.00"
    with pytest.raises(ValueError, match="exactly when status is 'reported'"):
        load_paper_numbers(_write_edited(tmp_path, edit))


def test_reported_without_value_is_rejected(tmp_path):
    def edit(raw):
        raw.loc[_first(raw, status="reported"), "value"] = ""
    with pytest.raises(ValueError, match="exactly when status is 'reported'"):
        load_paper_numbers(_write_edited(tmp_path, edit))


def test_duplicate_key_is_rejected(tmp_path):
    def edit(raw):
        i = _first(raw, table="QCFS-T1", arch="vgg16", method="QCFS", metric="snn", T="4")
        raw.loc[len(raw)] = raw.loc[i].copy()
    with pytest.raises(ValueError, match=r"duplicate key.*'QCFS-T1'"):
        load_paper_numbers(_write_edited(tmp_path, edit))


def test_key_columns_are_the_documented_ones():
    assert KEY == ["table", "dataset", "arch", "method", "tau", "weight_bits", "metric", "T"]
