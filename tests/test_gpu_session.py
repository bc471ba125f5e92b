"""The GPU session script, at the smoke budget on the CPU: the same path a lent GPU machine runs."""
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))


def test_wheel_closure_is_what_the_gpu_image_lacks():
    from gpu_wheels import PROVIDED, closure
    need = closure(["snakemake", "jsonschema"])
    assert {"snakemake", "jsonschema", "pulp", "yte"} <= set(need)
    assert not set(need) & PROVIDED  # never a second version of what the image has
    assert all(v for v in need.values())


@pytest.mark.slow
@pytest.mark.data
def test_gpu_session_smoke_writes_every_record(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path), "PYTHON": sys.executable}
    r = subprocess.run(["bash", "scripts/gpu_session.sh", "smoke"], cwd=REPO, env=env, capture_output=True,
                       text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    rec = json.loads((tmp_path / "proxy_gpu_throughput.json").read_text())
    assert sorted(t["model"] for t in rec["train"]) == ["resnet18", "resnet20", "vgg16"]
    assert all(t["train_img_per_s"] > 0 for t in rec["train"])
    assert {e["method"] for e in rec["evaluate"]} == {"qcfs", "qcfs_v0zero", "srp"}
    assert rec["workflow_wall_s"] > 0 and rec["provenance"]["device"]
    with tarfile.open(tmp_path / "proxy_fashion32_gpu.tar.gz") as tar:
        names = tar.getnames()
    assert "runs/proxy_fashion32/smoke/results.csv" in names
    assert "runs/proxy_fashion32/smoke/beside_papers.png" in names
    assert not any(n.endswith(".pt") for n in names)  # the weights stay behind
    assert "workflow exit status 0" in (tmp_path / "gpu_session.log").read_text()
