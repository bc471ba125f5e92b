"""What every result carries: code version, software, hardware, time."""
from __future__ import annotations

import datetime
import os
import platform
import subprocess
from pathlib import Path

import torch

from . import allocator

REPO_ROOT = Path(__file__).resolve().parents[1]


def git_commit() -> str:
    """HEAD commit, suffixed '+dirty' when tracked files differ from it; 'unknown' outside a checkout."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
        # results/ is the pipeline's own output: rewriting it does not change the code that produced it
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                ":(exclude)results"], cwd=REPO_ROOT, capture_output=True, text=True,
                               check=True).stdout.strip()
        return head[:12] + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def cpu_model() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return cpu


def device_description(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu: {cpu_model()} ({torch.get_num_threads()} threads)"


def provenance(device: torch.device) -> dict:
    """The code, software and hardware of the job that made a result."""
    import numpy
    return {
        "git_commit": git_commit(),
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "numpy_version": numpy.__version__,
        "os": platform.platform(),
        "device": device_description(device),
        "cpu_model": cpu_model(),
        "threads": torch.get_num_threads(),
        "hostname": platform.node(),
        "cpu_count": os.cpu_count(),
        "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "fixture_data": os.environ.get("SNNLIB_FIXTURE_DATA", "") not in ("", "0"),
        "allocator": allocator.setting(),
    }


def pick_device(requested: str = "auto") -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)
