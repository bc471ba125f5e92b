"""What the Snakemake workflow (workflow/rules/common.smk) needs beyond the config: which `python` its jobs run, and
where this repository's committed references and paper configs are, seen from the working directory (the repository
root when `snakemake` runs there; any other folder when the workflow is a module of another one)."""
from __future__ import annotations

import os
import sys
from glob import glob
from pathlib import Path

from .config import REPO_ROOT


def put_python_on_path(executable: str = sys.executable, environ=os.environ) -> str | None:
    """Make `python` in the rules' shell commands the interpreter that runs Snakemake (its venv or conda env) by
    putting that interpreter's folder first on PATH. `.venv/bin/snakemake` runs on the venv's Python but leaves PATH
    as it is, where `python` may be another interpreter, without snnlib. Under `--sdm conda` each job activates the
    rules' environment (workflow/envs/snnlib.yaml) on top of this PATH, so that environment's python comes first
    there. Returns a warning when the folder holds no `python` (a system interpreter named python3 only)."""
    folder = Path(executable).parent
    path = environ.get("PATH", "")
    if path.split(os.pathsep)[0] != str(folder):
        environ["PATH"] = str(folder) + (os.pathsep + path if path else "")
    if not (folder / "python").exists():
        return (f"{folder} holds no `python`: the jobs run whichever `python` is on PATH, not {executable}; "
                "run Snakemake from a venv or conda environment (make venv)")
    return None


def _here(path: Path) -> str:
    """`path` as seen from the working directory: relative inside it (results/default from the repository root),
    absolute outside it (the workflow as a module of another one)."""
    path = Path(path).absolute()
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def reference_dir(run_name: str) -> str:
    """The committed reference of a run (results/<name>[/<budget>] of this repository)."""
    return _here(REPO_ROOT / "results" / run_name)


def reference_results() -> list[str]:
    """Every committed reference's results.csv (results/<name>/ and results/<name>/<budget>/), smoke budgets
    left out: what `snakemake paper_tables` compares with the papers."""
    found = sorted(set(glob(str(REPO_ROOT / "results" / "*" / "results.csv"))
                       + glob(str(REPO_ROOT / "results" / "*" / "*" / "results.csv"))))
    return [_here(Path(p)) for p in found if "smoke" not in Path(p).relative_to(REPO_ROOT).parts[1:-1]]


def paper_configs() -> list[str]:
    """The paper configs (config/papers/*.yaml), whose `paper` entries name the cells the paper tables fill."""
    return [_here(p) for p in sorted((REPO_ROOT / "config" / "papers").glob("*.yaml"))]
