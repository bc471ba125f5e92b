"""workflow/envs/snnlib.yaml (the rules' conda environment, and conda users') and pyproject.toml (the Makefile's
venv) must list the same dependencies."""
import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def normalise(spec: str) -> str:
    return re.sub(r"\s+", "", spec).lower()


def test_environment_file_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {normalise(s) for s in project["dependencies"] + project["optional-dependencies"]["dev"]}
    env = yaml.safe_load((ROOT / "workflow" / "envs" / "snnlib.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    listed = {normalise(s) for s in pip if not s.startswith("-e")}
    assert listed == wanted
