#!/usr/bin/env bash
# Everything a lent GPU machine should run, in one call of under 10 minutes (README, "On a GPU"): the GPU proxy --
# config papers/proxy_fashion32.yaml at budget `gpu` (VGG-16, ResNet-20, ResNet-18 x 3 seeds, the whole DAG) -- with
# a record of its training throughput and simulation time, then the GPU benchmarks (benchmarks/gpu.sh, <= 3 minutes).
# Results land in $OUT (the device tool brings them back):
#   proxy_fashion32_gpu.tar.gz   the run folder: rows, tables, plots, every stage report and per-image outcome
#   proxy_gpu_throughput.json    img/s per training job, seconds per evaluation job, the machine
#   benchmarks/*_cuda.json       engine, precision and training benchmark records (commit to results/benchmarks/)
#   gpu_session.log              everything printed
# On the CPU, the same path at the smoke budget (what the tests run):  bash scripts/gpu_session.sh smoke
# The GPU machine has torch but no Snakemake and no network: carry `.whl` (python scripts/gpu_wheels.py) and
# `data/cache/fashion_mnist.npz`.
set -uo pipefail
cd "$(dirname "$0")/.."
BUDGET=${1:-gpu}
OUT=${OUT:-runs/gpu_session/out}
PY=${PYTHON:-python3}
LIMIT_S=${LIMIT_S:-330}   # then stop the workflow, whatever it has done: the records and the benchmarks get their time
mkdir -p "$OUT"
exec > >(tee "$OUT/gpu_session.log") 2>&1
export PYTHONUNBUFFERED=1 SNNLIB_DATA=${SNNLIB_DATA:-data}
if ! "$PY" -c "import snakemake, jsonschema, markdown" 2>/dev/null; then
    [ -d .whl ] || { echo "error: $PY lacks snakemake and no .whl/ came along; run: python scripts/gpu_wheels.py"; exit 2; }
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || { echo "error: installing the carried wheels failed"; exit 2; }
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
"$PY" - <<'PYEOF'
import torch
print("torch", torch.__version__, "cuda", torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "(cpu)")
PYEOF
CONFIG=config/papers/proxy_fashion32.yaml
RUN=runs/proxy_fashion32/$BUDGET
CORES=$("$PY" -c "import os; print(min(16, os.cpu_count()))")
start=$(date +%s)
# greedy scheduling: the ILP scheduler's solver is not carried (scripts/gpu_wheels.py)
timeout "$LIMIT_S" "$PY" -m snakemake --cores "$CORES" --scheduler greedy --configfile "$CONFIG" \
    --config budget="$BUDGET" --rerun-incomplete --keep-going
status=$?
wall=$(( $(date +%s) - start ))
echo "workflow exit status $status after $wall s (limit $LIMIT_S s)"
"$PY" -m snnlib throughput --run "$RUN" --out "$OUT/proxy_gpu_throughput.json" --wall-s "$wall" || true
# the run without its weights (the rows, reports and per-image outcomes reproduce every table)
tar -czf "$OUT/proxy_fashion32_gpu.tar.gz" --exclude='*.pt' --exclude='ckpt' "$RUN" "logs/proxy_fashion32/$BUDGET" \
    2>/dev/null || true
# the benchmarks (their own time limits, 3 minutes in all on the GPU); at the smoke budget, their CPU smoke mode
bench=0
BENCH_OUT="$OUT/benchmarks" PYTHON="$PY" bash benchmarks/gpu.sh "$([ "$BUDGET" = smoke ] && echo smoke || echo gpu)" \
    || bench=$?
echo "benchmarks exit status $bench"
ls -la "$OUT" "$OUT/benchmarks"
exit $(( status ? status : bench ))
