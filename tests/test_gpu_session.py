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

    # then the GPU benchmarks, in their CPU smoke mode: every step ran and wrote its record
    bench = tmp_path / "benchmarks"
    steps = [line.split("\t") for line in (bench / "gpu_bench_steps.tsv").read_text().splitlines()[1:]]
    assert [s[0] for s in steps] == ["engine_vgg16", "engine_resnet20", "precision", "training_resnet20",
                                     "training_vgg_mini"]
    assert all(s[1] == "0" for s in steps), steps
    for model in ("vgg16", "resnet20"):
        engine = json.loads((bench / f"engine_{model}_b2_T4_cpu.json").read_text())
        assert engine["checks"]["ours_equals_per_step_loop_bitwise"], engine["checks"]
        assert engine["checks"]["sweep_combined_equals_separate_bitwise"], engine["checks"]
    precision = json.loads((bench / "precision_proxy_resnet20_cpu.json").read_text())
    assert precision["budget"] == "smoke" and precision["n_images"] >= 20
    assert set(precision["results"]) == {"fp32", "fp32-batched", "bf16"}
    assert set(precision["results"]["fp32"]) == {"0", "1", "2", "4", "8"}  # QCFS and the config's SRP taus
    assert all(r["images_differing_at_any_T"] == 0 for r in precision["results"]["fp32"].values())
    for model in ("resnet20", "vgg_mini"):
        training = json.loads((bench / f"training_{model}_cpu.json").read_text())
        assert training["img_per_s"]["ours"] > 0 and training["reference"].startswith("reference_workers")
