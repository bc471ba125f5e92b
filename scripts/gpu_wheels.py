"""Wheels for a GPU machine that has torch but not our workflow packages and cannot reach PyPI.

Collects snakemake, jsonschema and markdown with everything they need that such an image usually lacks, at the versions
installed here, as Python 3.12 x86-64 wheels (binary ones from PyPI; pure-Python sdists built locally) into .whl/.
scripts/gpu_session.sh installs them with `pip install --no-index --no-deps --target`:

    python scripts/gpu_wheels.py            # then carry .whl (git-ignored) with the working tree
"""
from __future__ import annotations

import argparse
import importlib.metadata as md
import re
import subprocess
import sys
from pathlib import Path

from packaging.requirements import Requirement

ROOTS = ["snakemake", "jsonschema", "markdown"]
# what a CUDA PyTorch image brings (the device's package list); carrying a second version of these breaks installs
PROVIDED = set("""attrs certifi charset-normalizer click jinja2 markupsafe numpy packaging pandas matplotlib psutil
pygments python-dateutil pyyaml requests six tabulate typing-extensions urllib3 idna wrapt""".split())
# the GPU benchmark's optional comparison (benchmarks/engine.py, variant b), newest release, without its many
# dependencies (loguru, which its package imports, comes along); should its IF neuron still miss one, the
# benchmark says so and skips it
OPTIONAL = ["spikingjelly", "loguru"]
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux1_x86_64"]


def closure(roots: list[str]) -> dict[str, str]:
    """name -> installed version of every distribution the roots need (extras off), here."""
    seen: dict[str, str | None] = {}

    def walk(name: str) -> None:
        key = re.sub(r"[-_.]+", "-", name).lower()
        if key in seen:
            return
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            seen[key] = None
            return
        seen[key] = dist.version
        for spec in dist.requires or []:
            req = Requirement(spec)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                walk(req.name)
    for root in roots:
        walk(root)
    return {k: v for k, v in seen.items() if v and k not in PROVIDED}


def slim_pulp(wheel: Path) -> None:
    """Drop PuLP's bundled CBC solver binaries (16 of its 16.4 MB): Snakemake needs PuLP importable, and solves
    nothing with it under `--scheduler greedy`, which gpu_session.sh passes. Keeps the working tree that travels
    to the GPU machine under its size limit."""
    import zipfile
    slim = wheel.with_suffix(".slim")
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(slim, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            if not item.filename.startswith("pulp/solverdir/"):
                dst.writestr(item, src.read(item))
    slim.replace(wheel)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(".whl"))
    ap.add_argument("--python-version", default="3.12")
    args = ap.parse_args(argv)
    args.out.mkdir(exist_ok=True)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    for name, version in sorted(closure(ROOTS).items()):
        spec = f"{name}=={version}"
        binary = pip + ["download", "--no-deps", "--only-binary=:all:", "--python-version", args.python_version,
                        "--implementation", "cp", "-d", str(args.out), spec]
        for plat in PLATFORMS:
            binary += ["--platform", plat]
        if subprocess.run(binary, capture_output=True).returncode == 0:
            continue
        # no wheel on the index: a pure-Python sdist, built here (a compiled one would fail on the other machine)
        subprocess.run(pip + ["wheel", "--no-deps", "-w", str(args.out), spec], check=True)
        built = sorted(args.out.glob(f"{re.sub('-', '_', name)}-{version}-*.whl"), key=lambda p: p.stat().st_mtime)
        if built and not built[-1].name.endswith("-none-any.whl"):
            sys.exit(f"{spec}: built a platform wheel {built[-1].name}; it would not run on the GPU machine")
    for name in OPTIONAL:
        if subprocess.run(pip + ["download", "--no-deps", "--only-binary=:all:", "-d", str(args.out), name],
                          capture_output=True).returncode != 0:
            print(f"note: no wheel of {name} (optional) could be downloaded")
    for wheel in args.out.glob("pulp-*.whl"):
        slim_pulp(wheel)
    wheels = sorted(p.name for p in args.out.glob("*.whl"))
    size = sum(p.stat().st_size for p in args.out.glob("*.whl")) / 2**20
    print(f"{len(wheels)} wheels, {size:.1f} MiB in {args.out}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
