"""Accuracy effect of the engine's reduced-precision switch, on a trained SNN of the pipeline and its test subset.

For each variant the same evaluation as the pipeline's `evaluate` stage:
  fp32           the exact engine (bit-identical to the per-step loop on the CPU), the reference;
  fp32-batched   exact=False: every GEMM on the whole chunk of 8 steps, as on a GPU (last-bit differences in the
                 layer outputs, and the spike flips they cause: the CPU analogue of the GPU tolerance);
  bf16           autocast to bfloat16 (membrane potentials stay float32); tf32 on a GPU.
Each runs QCFS and SRP (the config's taus), one simulation to T_max, cumulative readout. Reports the accuracy at
the report T values, the largest accuracy difference to fp32 over all T <= T_max, and how many images' predictions
differ from fp32 (at T_max, and at any T). Writes results/benchmarks/precision_<experiment>_<device>.json.

    python benchmarks/precision.py --config config/default.yaml --experiment fashion_vgg --threads 2
    python benchmarks/precision.py --config config/papers/proxy_fashion32.yaml --budget gpu \\
        --experiment proxy_resnet20 --device cuda --max-images 2000

The SNN is the pipeline's converted network of seed --seed (default runs/<run name>/<experiment>/seed0/snn/qcfs.pt:
run the config's DAG first); QCFS is tau 0 of the same simulation, SRP the experiment's `methods.srp` taus and rule.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(ROOT / "config" / "default.yaml"))
    ap.add_argument("--budget", default=None, help="the config's budget (e.g. gpu, smoke)")
    ap.add_argument("--experiment", default="fashion_vgg")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--snn", type=Path, default=None,
                    help="default: runs/<run name>/<experiment>/seed<seed>/snn/qcfs.pt")
    ap.add_argument("--max-images", type=int, default=None, help="the first N evaluation images (default: all)")
    ap.add_argument("--device", default=None)
    ap.add_argument("--variants", nargs="+", default=None,
                    help="default: fp32 fp32-batched bf16 (+ tf32 on a GPU)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--omp-wait-policy", default="PASSIVE", help="PASSIVE, ACTIVE or default (leave unset)")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "benchmarks")
    return ap.parse_args()


ARGS = parse_args() if __name__ == "__main__" else None
if ARGS is not None:
    if ARGS.omp_wait_policy != "default":  # "default": the OpenMP runtime's own policy, as users get it
        os.environ.setdefault("OMP_WAIT_POLICY", ARGS.omp_wait_policy)
sys.path.insert(0, str(ROOT))
from snnlib import allocator  # noqa: E402

if ARGS is not None:
    allocator.keep_freed_memory()  # as the evaluation stage does (snnlib/allocator.py)

import torch  # noqa: E402

from snnlib.config import get_experiment, load_config  # noqa: E402
from snnlib.provenance import device_description, git_commit  # noqa: E402
from snnlib.engine import cumulative_predictions, default_plan  # noqa: E402
from snnlib.methods.srp.algorithm import simulate_srp  # noqa: E402
from snnlib.stages import eval_data, input_fn, load_snn  # noqa: E402


def main() -> None:
    args = ARGS
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    cfg = load_config(args.config, args.budget)
    exp = get_experiment(cfg, args.experiment)
    path = args.snn or ROOT / "runs" / cfg["run_name"] / args.experiment / f"seed{args.seed}" / "snn" / "qcfs.pt"
    ev, srp = exp["eval"], exp["methods"].get("srp", {})
    data, _ = eval_data(cfg, exp, device)
    batches, taken = [], 0
    for images, labels in data.in_order(ev["batch_size"]):
        batches.append((images, labels.cpu()))
        taken += len(labels)
        if args.max_images and taken >= args.max_images:
            break
    y = torch.cat([b[1] for b in batches])
    snn = load_snn(cfg, args.experiment, args.seed, "qcfs", path, device)
    to_input = input_fn(exp, device)
    precisions = args.variants or (["fp32", "fp32-batched", "tf32", "bf16"] if device.type == "cuda"
                                   else ["fp32", "fp32-batched", "bf16"])
    taus, rule, T_max = [0, *srp.get("taus", [])], srp.get("rule", "reference"), ev["T_max"]
    chunk = ev["chunk"] if isinstance(ev["chunk"], int) else 8  # one fixed plan per precision, not a tuned one
    predictions, outputs, seconds = {}, {}, {}
    for precision in precisions:
        if precision == "fp32-batched":
            plan = replace(default_plan(device, 8), exact=False)
        else:
            plan = replace(default_plan(device, chunk), precision=precision)
        preds, outs = {t: [] for t in taus}, {t: [] for t in taus}
        t0 = time.perf_counter()
        for images, _ in batches:
            out = simulate_srp(snn, to_input(images), T_max, taus, rule, plan=plan)
            for t in taus:
                preds[t].append(cumulative_predictions(out[t].float()).cpu())
                outs[t].append(out[t].float().cpu())
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds[precision] = time.perf_counter() - t0
        predictions[precision] = {t: torch.cat(p, 1) for t, p in preds.items()}  # [T_max, N]
        outputs[precision] = {t: torch.cat(o, 1) for t, o in outs.items()}  # [T_max, N, C] per-step outputs
        print(f"{precision}: {seconds[precision]:.1f} s")
    report_T = [t for t in cfg.get("report_T", [1, 2, 4, 8, 16, 32, 64]) if t <= T_max]
    results = {}
    for precision in precisions:
        rows = {}
        for t in taus:
            p, ref = predictions[precision][t], predictions["fp32"][t]
            acc = (p == y).double().mean(1)
            acc_ref = (ref == y).double().mean(1)
            rows[str(t)] = {"accuracy_at": {str(T): float(acc[T - 1]) for T in report_T},
                            "max_abs_accuracy_diff_vs_fp32": float((acc - acc_ref).abs().max()),
                            "images_differing_at_T_max": int((p[-1] != ref[-1]).sum()),
                            "images_differing_at_any_T": int((p != ref).any(0).sum()),
                            "per_step_outputs_differing": float(
                                (outputs[precision][t] != outputs["fp32"][t]).double().mean()),
                            "max_abs_per_step_output_diff": float(
                                (outputs[precision][t] - outputs["fp32"][t]).abs().max())}
            print(f"{precision} tau={t}: acc@T_max {float(acc[-1]):.4f}, max |acc - fp32| over T "
                  f"{rows[str(t)]['max_abs_accuracy_diff_vs_fp32']:.4f}, images differing at T_max "
                  f"{rows[str(t)]['images_differing_at_T_max']}/{len(y)}, per-step outputs differing "
                  f"{rows[str(t)]['per_step_outputs_differing']:.2e}")
        results[precision] = rows
    report = {"experiment": args.experiment, "config": cfg["name"], "budget": args.budget, "seed": args.seed,
              "snn": str(path), "n_images": int(len(y)),
              "T_max": T_max, "taus": taus, "chunk": chunk, "device": device_description(device),
              "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "torch": torch.__version__,
              "git_commit": git_commit(), "seconds": seconds, "results": results,
              "command": "python benchmarks/precision.py " + " ".join(sys.argv[1:])}
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"precision_{args.experiment}_{device.type}.json"
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
