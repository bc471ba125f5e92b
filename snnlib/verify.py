"""A run's rows against the committed reference of its config: `identical`, `within tolerance`, or `different`.

A run writes to runs/<name>/ (git-ignored); the evidence committed for a config lives in results/<name>/, made
by `python -m snnlib promote` from a finished run, with the environment that made it (reference.json) and the
package versions (constraints.txt). Verification compares every (experiment, seed, method, variant, T) cell:
the accuracy and correct count, the ANN accuracies, the operation counts and energy, and, where both sides kept
them, every image's prediction at every T. It names the reference's code version, torch, CPU and threads, and
warns where this run's differ: only the same code on the same CPU, torch and thread count must be bit-identical.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import outcomes
from .html_pages import write_markdown_page

KEY = ["experiment", "seed", "method", "variant", "T"]
EXACT = ["accuracy", "correct", "n_images", "ann_quantized_subset", "ann_clip_subset", "ann_quantized_full",
         "ann_clip_full"]
# compared where both sides have the column: a reference written before SynOps existed is compared on the rest
OPS = ["acs", "macs", "dense_ops", "SynOps", "firing_rate", "energy_uj"]
ENV = {"code": ("git_commit", "train_git_commit"), "torch": ("torch_version", "train_torch_version"),
       "cpu": ("cpu_model", "train_cpu_model"), "threads": ("threads", "train_threads"),
       "device": ("device", "train_device")}
OPS_TOLERANCE = 1e-3   # relative, for "within tolerance"


CODE_PATHS = ("snnlib", "workflow", "Snakefile", "config", "pyproject.toml")
# the verifier itself makes no result: a change to it alone leaves a reference's code the same
NOT_RESULT_CODE = (":(exclude)snnlib/verify.py",)


def _code_changed(ref_commits: list[str], run_commits: list[str]) -> bool:
    """Whether the code that makes results differs between the reference's commits and this run's (a commit
    that changed only documentation or results is the same code). True when git cannot tell."""
    import subprocess
    from .provenance import REPO_ROOT
    if any(c.endswith("+dirty") or c == "unknown" for c in ref_commits + run_commits):
        return True
    commits = sorted(set(ref_commits) | set(run_commits))
    for a, b in zip(commits, commits[1:]):
        r = subprocess.run(["git", "diff", "--quiet", a, b, "--", *CODE_PATHS, *NOT_RESULT_CODE], cwd=REPO_ROOT,
                           capture_output=True)
        if r.returncode != 0:
            return True
    return False


@dataclass
class Verdict:
    status: str                       # identical | within tolerance | different | no reference
    text: str
    differences: list[str] = field(default_factory=list)


def _env(rows: pd.DataFrame) -> dict[str, list[str]]:
    out = {}
    for name, cols in ENV.items():
        vals = set()
        for c in cols:
            if c in rows:
                vals |= {str(v) for v in rows[c].dropna().unique()}
        out[name] = sorted(vals)
    return out


def _same(a: pd.Series, b: pd.Series) -> np.ndarray:
    a, b = a.to_numpy(), b.to_numpy()
    try:
        return (a == b) | (pd.isna(a) & pd.isna(b))
    except TypeError:
        return np.array([str(x) == str(y) for x, y in zip(a, b)])


def compare_rows(run: pd.DataFrame, ref: pd.DataFrame, tolerance_pp: float) -> tuple[str, list[str]]:
    """(status, differences) of two result tables, cell by cell."""
    diffs: list[str] = []
    for name, df in (("reference", ref), ("run", run)):
        missing = [c for c in KEY if c not in df]
        if missing:
            return "different", [f"the {name}'s rows lack the columns {missing}: it was made by another version of "
                                 "the harness; remake it (make reproduce, then make reference)"]
    run_keys, ref_keys = set(map(tuple, run[KEY].astype(str).values)), set(map(tuple, ref[KEY].astype(str).values))
    for k in sorted(ref_keys - run_keys)[:10]:
        diffs.append(f"missing in this run: {dict(zip(KEY, k))}")
    for k in sorted(run_keys - ref_keys)[:10]:
        diffs.append(f"not in the reference: {dict(zip(KEY, k))}")
    if ref_keys != run_keys:
        return "different", diffs
    run, ref = (df.assign(**{c: df[c].astype(str) for c in KEY}).set_index(KEY).sort_index() for df in (run, ref))
    status = "identical"
    for col in EXACT + OPS:
        if col not in ref or col not in run:
            continue
        same = _same(run[col], ref[col])
        if same.all():
            continue
        a, b = pd.to_numeric(run[col], errors="coerce"), pd.to_numeric(ref[col], errors="coerce")
        if col in OPS:
            within = ((a - b).abs() <= OPS_TOLERANCE * b.abs().clip(lower=1e-12)) | (a.isna() & b.isna())
        elif col in ("correct", "n_images"):
            within = pd.Series(True, index=a.index) if col == "correct" else a == b
        else:
            within = (a - b).abs() * 100 <= tolerance_pp
        bad = ~within.to_numpy()
        changed = ~same
        for idx in list(run.index[changed])[:8]:
            diffs.append(f"{col} at {dict(zip(KEY, idx))}: run {run.at[idx, col]}, reference {ref.at[idx, col]}")
        if changed.sum() > 8:
            diffs.append(f"{col}: {int(changed.sum())} cells differ in all")
        status = "different" if bad.any() or status == "different" else "within tolerance"
    return status, diffs


def compare_outcomes(run_dir: Path, ref_dir: Path) -> tuple[int, list[str]]:
    """Per-image predictions of every evaluation both sides kept: (files compared, differences)."""
    diffs, compared = [], 0
    for ref_file in sorted(Path(ref_dir).glob("**/eval/*.npz")) + sorted(Path(ref_dir).glob("**/ann_outcomes.npz")):
        rel = ref_file.relative_to(ref_dir)
        run_file = Path(run_dir) / rel
        if not run_file.exists():
            continue
        a, b = outcomes.load(run_file), outcomes.load(ref_file)
        compared += 1
        if not a.same_images(b):
            diffs.append(f"{rel}: evaluated on other images")
            continue
        for key in sorted(set(a.predictions) | set(b.predictions)):
            pa, pb = a.predictions.get(key), b.predictions.get(key)
            if pa is None or pb is None or pa.shape != pb.shape:
                diffs.append(f"{rel} {key or 'main'}: present or shaped differently")
            elif not np.array_equal(pa, pb):
                n = int((pa != pb).any(axis=0).sum()) if pa.ndim > 1 else int((pa != pb).sum())
                diffs.append(f"{rel} {key or 'main'}: {n} images predicted differently at some T")
    return compared, diffs


def verify(run_dir: Path, ref_dir: Path, tolerance_pp: float = 0.5, out: Path | None = None) -> Verdict:
    run_dir, ref_dir = Path(run_dir), Path(ref_dir)
    run_csv, ref_csv = run_dir / "results.csv", ref_dir / "results.csv"
    if not ref_csv.exists():
        v = Verdict("no reference", f"VERIFICATION: no reference to compare with ({ref_csv} does not exist). "
                    f"To make this run the reference: python -m snnlib promote --run {run_dir} --reference {ref_dir}")
    else:
        run, ref = pd.read_csv(run_csv), pd.read_csv(ref_csv)
        status, diffs = compare_rows(run, ref, tolerance_pp)
        n_files, out_diffs = compare_outcomes(run_dir, ref_dir)
        if out_diffs and status == "identical":
            status = "within tolerance"
        diffs += out_diffs
        meta = json.loads((ref_dir / "reference.json").read_text()) if (ref_dir / "reference.json").exists() else {}
        env_run, env_ref = _env(run), _env(ref)
        lines = [f"VERIFICATION of {run_dir} against the reference {ref_dir}: **{status}**", ""]
        if status == "within tolerance":
            lines.append(f"(tolerance: accuracy within {tolerance_pp} pp, operations and energy within "
                         f"{100 * OPS_TOLERANCE:g}% relative; per-image predictions may differ)")
        lines += [f"- cells compared: {len(ref)} rows x {len([c for c in EXACT + OPS if c in ref])} columns; "
                  f"per-image outcome files compared: {n_files}",
                  f"- reference made at commit {', '.join(env_ref['code']) or '?'}, torch "
                  f"{', '.join(env_ref['torch']) or '?'}, on {', '.join(env_ref['cpu']) or '?'} with "
                  f"{', '.join(env_ref['threads']) or '?'} threads"
                  + (f"; by `{meta['command']}` on {meta.get('date', '?')}" if meta.get("command") else ""),
                  f"- this run: commit {', '.join(env_run['code'])}, torch {', '.join(env_run['torch'])}, on "
                  f"{', '.join(env_run['cpu'])} with {', '.join(env_run['threads'])} threads"]
        for name in ("code", "torch", "cpu", "threads"):
            if name == "code" and set(env_run[name]) != set(env_ref[name]) and \
                    not _code_changed(env_ref[name], env_run[name]):
                lines.append(f"- the reference's commit ({', '.join(env_ref[name])}) is not this run's "
                             f"({', '.join(env_run[name])}), but no code or config changed between them "
                             f"({', '.join(CODE_PATHS)})")
                continue
            if set(env_run[name]) != set(env_ref[name]):
                lines.append(f"- WARNING: the reference's {name} ({', '.join(env_ref[name])}) differs from this "
                             f"run's ({', '.join(env_run[name])}); bit-identical results are only promised for "
                             "the same code, CPU, torch and threads")
        if diffs:
            lines += ["", "Differences:"] + [f"- {d}" for d in diffs[:40]]
            if len(diffs) > 40:
                lines.append(f"- ... and {len(diffs) - 40} more")
        v = Verdict(status, "\n".join(lines), diffs)
    if out is not None:
        write_markdown_page(Path(out), f"# Verification\n\n{v.text}\n")
    return v


REFERENCE_FILES = ("results.csv", "table.md", "efficiency.md", "claims.md", "claims.csv", "methods.md",
                   "unevenness.md", "accuracy_vs_T.png", "accuracy_vs_T.svg", "accuracy_vs_energy.png",
                   "accuracy_vs_energy.svg", "accuracy_vs_latency.png", "unevenness.png", "unevenness.svg",
                   "beside_papers.png", "beside_papers.svg")
PINNED = ("torch", "numpy", "pandas", "matplotlib", "tabulate", "pyyaml", "jsonschema", "snakemake")


def promote(run_dir: Path, ref_dir: Path, command: str = "") -> None:
    """Copy a finished run's evidence (tables, plots, rows, every report and per-image outcome file; never a
    checkpoint) to results/<name>/, with reference.json (who, when, what) and constraints.txt (the versions)."""
    import datetime
    import importlib.metadata as md
    import platform
    run_dir, ref_dir = Path(run_dir), Path(ref_dir)
    if not (run_dir / "results.csv").exists():
        raise FileNotFoundError(f"{run_dir}/results.csv does not exist: finish the run first")
    if ref_dir.exists() and any(ref_dir.iterdir()):
        if not (ref_dir / "results.csv").exists():
            raise FileExistsError(f"{ref_dir} is not empty and holds no reference (no results.csv); give the "
                                  "config's own folder, results/<name>[/<budget>]")
        shutil.rmtree(ref_dir)  # the old reference is in git; none of its files may outlive it
    ref_dir.mkdir(parents=True)
    for f in REFERENCE_FILES:
        if (run_dir / f).exists():
            shutil.copy2(run_dir / f, ref_dir / f)
    for f in run_dir.rglob("*"):
        rel = f.relative_to(run_dir)
        if f.is_file() and f.suffix in (".json", ".npz") and "ckpt" not in rel.parts and len(rel.parts) > 1:
            (ref_dir / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, ref_dir / rel)
    rows = pd.read_csv(run_dir / "results.csv")
    versions = {}
    for pkg in PINNED:
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    meta = {"command": command, "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "python": platform.python_version(), "packages": versions, **_env(rows)}
    (ref_dir / "reference.json").write_text(json.dumps(meta, indent=1) + "\n")
    (ref_dir / "constraints.txt").write_text(
        "# the versions that made this reference (pip install -c this file ... to pin them)\n"
        + "".join(f"{k}=={v}\n" for k, v in versions.items()))
