#!/usr/bin/env bash
# The GPU benchmarks in one command, within 3 minutes on one data-centre GPU (benchmarks/README.md, "GPU"):
#   engine      VGG-16 and ResNet-20 at the papers' CIFAR batch (128) and T = 32: the per-step loop, SpikingJelly
#               (when installed), ours, the dense limit, and the shared-prefix QCFS + SRP sweep
#   precision   tf32 and bf16 against fp32 on a trained SNN of the GPU proxy run (ResNet-20, seed 0), when it exists
#   training    our training epoch against the DataLoader + per-image-transform loop (ResNet-20, mini-VGG)
# Records: $BENCH_OUT (default results/benchmarks)/*_cuda.json, then one line per step in gpu_bench_steps.tsv.
# Each step runs under its own time limit; one that fails or runs out is reported and the others still run.
#
#   bash benchmarks/gpu.sh          # on the GPU (scripts/gpu_session.sh runs it after the proxy run)
#   bash benchmarks/gpu.sh smoke    # the same steps on the CPU at tiny sizes, records in a scratch folder (the test)
set -uo pipefail
cd "$(dirname "$0")/.."
MODE=${1:-gpu}
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
case "$MODE" in
    gpu)
        DEVICE=cuda OUT=${BENCH_OUT:-results/benchmarks} BATCH=128 T=32 REPEATS=3 TRAIN_IMAGES=6400
        BUDGET=gpu PRECISION_IMAGES=2000 TRAIN_FLAGS="" SCALE=1 ;;
    smoke)
        DEVICE=cpu OUT=${BENCH_OUT:-runs/gpu_bench_smoke} BATCH=2 T=4 REPEATS=1 TRAIN_IMAGES=256
        BUDGET=smoke PRECISION_IMAGES=20 TRAIN_FLAGS=--smoke SCALE=4 ;;  # a slow CPU gets 4x the time
    *) echo "usage: $0 [gpu|smoke]" >&2; exit 2 ;;
esac
SNN=${PRECISION_SNN:-runs/proxy_fashion32/$BUDGET/proxy_resnet20/seed0/snn/qcfs.pt}
THREADS=$("$PY" -c "import os; print(min(8, os.cpu_count()))")
mkdir -p "$OUT"
STEPS="$OUT/gpu_bench_steps.tsv"
printf "step\texit\tseconds\tlimit_s\n" > "$STEPS"
failed=0

step() {  # step NAME LIMIT_S CMD...: run CMD under LIMIT_S x SCALE seconds, record how it ended
    local name=$1 limit=$(( $2 * SCALE )) t0=$SECONDS rc
    shift 2
    echo "== $name (limit ${limit}s): $*"
    timeout "$limit" "$@"
    rc=$?
    printf "%s\t%s\t%s\t%s\n" "$name" "$rc" "$((SECONDS - t0))" "$limit" >> "$STEPS"
    [ "$rc" = 0 ] || { echo "== $name: exit $rc$([ "$rc" = 124 ] && echo ", out of time")"; failed=1; }
}

start=$SECONDS
for model in vgg16 resnet20; do
    step "engine_$model" 55 "$PY" benchmarks/engine.py --device "$DEVICE" --model "$model" --batch "$BATCH" --T "$T" \
        --repeats "$REPEATS" --threads "$THREADS" --omp-wait-policy default --out "$OUT"
done
if [ -f "$SNN" ]; then
    step precision 30 "$PY" benchmarks/precision.py --device "$DEVICE" --config config/papers/proxy_fashion32.yaml \
        --budget "$BUDGET" --experiment proxy_resnet20 --snn "$SNN" --max-images "$PRECISION_IMAGES" \
        --threads "$THREADS" --omp-wait-policy default --out "$OUT"
else
    echo "== precision: skipped, no SNN at $SNN (run the GPU proxy first: scripts/gpu_session.sh)"
    printf "precision\tskipped\t0\t0\n" >> "$STEPS"
fi
for model in resnet20 vgg_mini; do
    step "training_$model" 20 "$PY" benchmarks/training.py --device "$DEVICE" --model "$model" \
        --images "$TRAIN_IMAGES" --repeats 2 --threads "$THREADS" $TRAIN_FLAGS \
        --out "$OUT/training_${model}_$DEVICE.json"
done
echo "gpu benchmarks: $((SECONDS - start)) s in all; steps:"
cat "$STEPS"
exit "$failed"
