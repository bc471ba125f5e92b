"""The benchmark scripts run (smoke sizes; their timings are never asserted: benchmarks are not tests)."""
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.data
def test_training_benchmark_runs_every_variant():
    r = subprocess.run([sys.executable, "benchmarks/training.py", "--model", "lenet", "--smoke", "--threads", "1",
                        "--batch", "32"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    for variant in ("ours ", "ours_channels_last", "reference_workers0", "reference_workers1"):
        assert variant in r.stdout
    assert "reference (reference_workers" in r.stdout


@pytest.mark.parametrize("script", ["engine.py", "lambda_guard.py", "precision.py", "training.py", "summarize.py"])
def test_every_benchmark_script_imports_and_has_help(script):
    """A refactor that renames a library function must not leave a benchmark broken until someone runs it."""
    r = subprocess.run([sys.executable, f"benchmarks/{script}", "--help"], cwd=REPO, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
