"""snnlib/papers/paper_numbers.csv against the spec it transcribes, cell for cell, and the loader's checks.

The spec tables are parsed from the markdown itself, so a CSV edit that drifts from the spec (or a spec update the CSV
has not followed) fails here, in both directions.
"""
from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd
import pytest

from snnlib.papers import KEY, PAPER_NUMBERS_PATH, load_paper_numbers, paper_cell

SPEC_DIR = Path(__file__).resolve().parents[2] / "shared" / "spec"

ARCHS = {"VGG-16": "vgg16", "ResNet-18": "resnet18", "ResNet-20": "resnet20", "ResNet-34": "resnet34",
         "CIFARNet": "cifarnet"}


@pytest.fixture(scope="module")
def numbers() -> pd.DataFrame:
    return load_paper_numbers()


def _spec_lines(name: str) -> list[str]:
    path = SPEC_DIR / name
    if not path.is_file():
        pytest.skip(f"{path} not found: the spec lives in shared/ beside the checkout (CI has it)")
    return path.read_text(encoding="utf-8").splitlines()


def _table_after(lines: list[str], marker: str) -> list[dict[str, str]]:
    """The first markdown table after the first line starting with `marker`, as dicts keyed by the header."""
    start = next(i for i, line in enumerate(lines) if line.strip().startswith(marker))
    rows = []
    for line in lines[start + 1:]:
        line = line.strip()
        if line.startswith("|"):
            rows.append([cell.strip() for cell in line.strip("|").split("|")])
        elif rows:
            break
    header, sep, *body = rows
    assert all(set(s) <= set("-: ") for s in sep), f"no table separator under {marker!r}"
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


def _spec_cells(lines: list[str]) -> dict[tuple, tuple[float | None, str]]:
    """Every cell of QCFS Tables 1-3, the SRP README table and the two [H-MT] citations, keyed like the CSV."""
    cells = {}

    def put(key, cell):
        assert key not in cells, f"spec cell {key} twice"
        cells[key] = cell

    for marker, table, dataset in [("**Table 1: CIFAR-10**", "QCFS-T1", "cifar10"),
                                   ("**Table 2: CIFAR-100**", "QCFS-T2", "cifar100")]:
        for row in _table_after(lines, marker):
            method = row.pop("Method").replace("*", "").rstrip("¹")
            arch = _arch(row.pop("Arch"))
            put((table, dataset, arch, method, None, "ann", None), _cell(row.pop("ANN")))
            for column, text in row.items():
                put((table, dataset, arch, method, None, "snn", _t_of(column)), _cell(text))

    for row in _table_after(lines, "**Table 3:"):
        put(("QCFS-T3", "cifar10", _arch(row["Arch"]), row["Model"], None, "snn", int(row["Timesteps"])),
            _cell(row["SNN acc"]))

    for row in _table_after(lines, "**SRP README table**"):
        dataset = {"CIFAR-100": "cifar100", "ImageNet": "imagenet"}[row.pop("Dataset")]
        arch = _arch(row.pop("Arch"))
        tau = int(row.pop("Para").removeprefix("τ="))
        put(("SRP-README", dataset, arch, "SRP", tau, "ann", None), _cell(row.pop("ANN")))
        for column, text in row.items():
            put(("SRP-README", dataset, arch, "SRP", tau, "snn", _t_of(column)), _cell(text))

    for marker, table, method in [("- [H-MT] Table 1 cites SRP on ImageNet", "SRP-ImageNet-cited", "SRP"),
                                  ("**QCFS on ImageNet.**", "QCFS-ImageNet-cited", "QCFS")]:
        for row in _table_after(lines, marker):
            arch = _arch(row.pop("Arch"))
            put((table, "imagenet", arch, method, None, "ann", None), _cell(row.pop("ANN")))
            for column, text in row.items():
                put((table, "imagenet", arch, method, None, "snn", _t_of(column)), _cell(text))
    return cells


def _csv_cells(df: pd.DataFrame, tables) -> dict[tuple, tuple[float | None, str]]:
    cells = {}
    for row in df[df["table"].isin(tables)].itertuples(index=False):
        key = (row.table, row.dataset, row.arch, row.method, None if pd.isna(row.tau) else int(row.tau),
               row.metric, None if pd.isna(row.T) else int(row.T))
        cells[key] = (None if math.isnan(row.value) else row.value, row.status)
    return cells


def test_csv_matches_srp_qcfs_spec_cell_for_cell(numbers):
    spec = _spec_cells(_spec_lines("srp_qcfs.md"))
    csv = _csv_cells(numbers, {key[0] for key in spec})
    assert len(spec) > 200  # the parser found the tables, not a fragment of them
    missing = sorted(set(spec) - set(csv), key=str)
    extra = sorted(set(csv) - set(spec), key=str)
    differ = {k: (spec[k], csv[k]) for k in set(spec) & set(csv) if spec[k] != csv[k]}
    assert not missing, f"spec cells missing from the CSV: {missing}"
    assert not extra, f"CSV cells not in the spec: {extra}"
    assert not differ, f"(spec, CSV) differ: {differ}"


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


def test_cq_abstract_matches_cq_spec(numbers):
    lines = _spec_lines("cq.md")
    nets = {"VGG-*": "vgg_star", "VGG-19": "vgg19"}
    expected = {}
    for row in _table_after(lines, "### 6.1"):
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
    # third-party reproductions (spec §5.3) are not the papers' numbers and stay out
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
