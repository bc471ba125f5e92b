"""Simulation-engine benchmark: the same converted network, batch and T through

  (a) the papers' per-step loop (`engine.per_step_loop`: the whole network once per time step),
  (b) SpikingJelly's multi-step IF neuron in place of ours, the stateless layers on the whole [T * B] batch, as in
      SpikingJelly's multi-step mode (its automatically selected backend for the device; optional dependency:
      pip install --no-deps spikingjelly),
  (c) ours (`simulate(..., chunk="auto")`, the plan it measured; tuning is done before timing),
  (d) the dense limit: the same network as an ANN with ReLU (the same convolutions and linear layers, one cheap
      elementwise op per neuron), T forwards of B images or one forward of T * B, whichever is faster,

and the whole QCFS + SRP(tau in --taus) sweep of one model: ours in one call vs each method simulated separately
(with our engine, which isolates the shared prefix, and with the papers' loop).

Every variant is warmed up once, then timed --repeats times, interleaved; the minimum counts. Before timing, the
outputs are checked: (c) must equal (a) bit for bit on the CPU. Prints the ratios of one run and writes them, with
the machine described, to results/benchmarks/engine_<model>_b<B>_T<T>_<device>.json.

    python benchmarks/engine.py --threads 2 [--model vgg16] [--batch 16] [--T 16] [--device cpu] [--repeats 3]

OMP_WAIT_POLICY is set to PASSIVE unless already set (--omp-wait-policy): with active spin-waiting, OpenMP's
barriers stall whenever another process holds one of the cores, which made the same simulation 5-30x slower and
unrepeatable on the shared 2-core machine (benchmarks/README.md). It is recorded with the results.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="vgg16")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--T", type=int, default=16)
    ap.add_argument("--taus", type=int, nargs="+", default=[1, 2, 4, 8])
    ap.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--omp-wait-policy", default="PASSIVE", help="PASSIVE, ACTIVE or default (leave unset)")
    ap.add_argument("--skip-sweep", action="store_true")
    ap.add_argument("--glibc-allocator", action="store_true",
                    help="leave glibc's malloc thresholds alone (the stages set them: snnlib/allocator.py)")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "benchmarks")
    return ap.parse_args()


ARGS = parse_args() if __name__ == "__main__" else None
if ARGS is not None:
    if ARGS.omp_wait_policy != "default":  # "default": the OpenMP runtime's own policy, as users get it
        os.environ.setdefault("OMP_WAIT_POLICY", ARGS.omp_wait_policy)  # before torch starts its OpenMP runtime
sys.path.insert(0, str(ROOT))
from snnlib import allocator  # noqa: E402

if ARGS is not None and not ARGS.glibc_allocator:
    allocator.keep_freed_memory()  # as the pipeline's stages do; every variant runs under it (snnlib/allocator.py)

import torch  # noqa: E402
from torch import nn  # noqa: E402

from snnlib.methods.qcfs.activation import QCFS, set_activation_mode  # noqa: E402
from snnlib.methods.qcfs.conversion import convert  # noqa: E402
from snnlib.models import create_model  # noqa: E402
from snnlib.neurons import IFNeuron  # noqa: E402
from snnlib.provenance import device_description, git_commit  # noqa: E402
from snnlib.engine import cached_plan, per_step_loop, simulate, tune  # noqa: E402
from snnlib.methods.srp.algorithm import per_step_srp, simulate_srp, srp_branches  # noqa: E402


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(variants: dict, repeats: int, device, rounds: list | None = None) -> dict[str, float]:
    """Seconds per variant: one warm-up each, then `repeats` interleaved rounds, minimum. Each round's times are
    appended to `rounds` if given (for ratios paired within a round, which a machine's drifting speed affects
    less than ratios of minima taken minutes apart)."""
    for fn in variants.values():
        fn()
    best = {name: float("inf") for name in variants}
    for _ in range(repeats):
        this = {}
        for name, fn in variants.items():
            sync(device)
            t0 = time.perf_counter()
            fn()
            sync(device)
            this[name] = time.perf_counter() - t0
            best[name] = min(best[name], this[name])
        if rounds is not None:
            rounds.append(this)
    return best


def paired_median(rounds: list[dict], num: str, dens: list[str]) -> float:
    """Median over rounds of num / min(dens) within the same round."""
    return statistics.median(r[num] / min(r[d] for d in dens) for r in rounds)


class SpikingJellyIF(nn.Module):
    """SpikingJelly's multi-step IFNode (soft reset, v0 = v0_fraction * theta) on our [T * B, ...] layout."""

    def __init__(self, neuron: IFNeuron, steps: int):
        super().__init__()
        from spikingjelly.activation_based import neuron as sj_neuron
        self.theta = neuron.theta.clone()
        self.v0 = float((neuron.theta * neuron.v0_fraction).item())
        self.node = sj_neuron.IFNode(v_threshold=float(self.theta.item()), v_reset=None, step_mode="m")
        self.steps = steps

    def forward(self, x):
        xs = x.reshape(self.steps, x.shape[0] // self.steps, *x.shape[1:])
        self.node.reset()
        self.node.v = torch.full_like(xs[0], self.v0)
        return (self.node(xs) * self.theta.to(x.device)).reshape(x.shape)


def spikingjelly_snn(snn: nn.Module, T: int) -> nn.Module | None:
    try:
        from spikingjelly.activation_based import neuron  # noqa: F401
    except Exception as e:  # not installed, or installed without a dependency it imports (--no-deps)
        print(f"SpikingJelly not usable here ({type(e).__name__}: {e}); variant b skipped")
        return None
    import copy
    sj = copy.deepcopy(snn)

    def swap(module):
        for name, child in module.named_children():
            if isinstance(child, IFNeuron):
                setattr(module, name, SpikingJellyIF(child, T))
            else:
                swap(child)
    swap(sj)
    return sj


def machine(device) -> dict:
    info = {"device": device_description(device), "cpu_count": os.cpu_count(), "threads": torch.get_num_threads(),
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "torch": torch.__version__,
            "python": platform.python_version(), "platform": platform.platform(),
            "allocator": allocator.setting()}
    try:
        info["load_average_at_start"] = os.getloadavg()
    except OSError:
        pass
    try:
        import spikingjelly
        info["spikingjelly"] = getattr(spikingjelly, "__version__", "installed")
    except ImportError:
        info["spikingjelly"] = None
    return info


def main() -> None:
    args = ARGS
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    start = machine(device)
    torch.manual_seed(0)
    ann = create_model(args.model, num_classes=10, in_channels=3, image_size=32,
                       act=lambda: QCFS(4, 1.0)).to(device).eval()
    snn = convert(ann)
    x = torch.rand(args.batch, 3, 32, 32, device=device)
    T, B, taus = args.T, args.batch, sorted(set(args.taus))
    relu_ann = set_activation_mode(convert_back_to_ann(ann), "relu")
    qcfs_ann = ann
    xt = x.repeat(T, *([1] * (x.dim() - 1)))

    # correctness before speed
    plan = tune(snn, x, T)
    reference = per_step_loop(snn, x, T)
    ours_out = simulate(snn, x, T, chunk="auto")[""]
    checks = {"ours_equals_per_step_loop_bitwise": bool(torch.equal(ours_out, reference)),
              "ours_max_abs_diff_vs_per_step_loop": float((ours_out - reference).abs().max())}
    sj = spikingjelly_snn(snn, T)
    if sj is not None:
        with torch.no_grad():
            sj_out = sj(xt).reshape(T, B, -1)
        checks["spikingjelly_max_abs_diff_vs_per_step_loop"] = float((sj_out - reference).abs().max())
        checks["spikingjelly_prediction_agreement_at_T"] = float(
            (sj_out.sum(0).argmax(-1) == reference.sum(0).argmax(-1)).float().mean())

    def dense(model, batched):
        with torch.no_grad():
            return model(xt) if batched else [model(x) for _ in range(T)]

    variants = {
        "a_per_step_loop": lambda: per_step_loop(snn, x, T),
        "c_ours": lambda: simulate(snn, x, T, chunk="auto"),
        "d_dense_relu_T_forwards": lambda: dense(relu_ann, False),
        "d_dense_relu_TB_batch": lambda: dense(relu_ann, True),
        "dense_qcfs_T_forwards": lambda: dense(qcfs_ann, False),
        "dense_qcfs_TB_batch": lambda: dense(qcfs_ann, True),
    }
    if sj is not None:
        def run_sj():
            with torch.no_grad():
                sj(xt)
        variants["b_spikingjelly"] = run_sj
    rounds: list[dict] = []
    times = measure(variants, args.repeats, device, rounds)
    dense = ["d_dense_relu_T_forwards", "d_dense_relu_TB_batch"]
    dense_limit = min(times[d] for d in dense)
    ours = times["c_ours"]
    ratios = {"c_over_d (target <= 1.10)": ours / dense_limit,
              "c_over_d paired median over rounds": paired_median(rounds, "c_ours", dense),
              "c_over_dense_qcfs_ann": ours / min(times["dense_qcfs_T_forwards"], times["dense_qcfs_TB_batch"]),
              "a_over_c (target >= 1.5 on GPU at the papers' batch sizes)": times["a_per_step_loop"] / ours}
    if "b_spikingjelly" in times:
        ratios["c_over_b (target <= 1.0)"] = ours / times["b_spikingjelly"]

    sweep = {}
    if not args.skip_sweep:
        methods = [0, *taus]
        sweep_plan = tune(snn, x, T, srp_branches([t for t in taus if t > 0]))
        combined = simulate_srp(snn, x, T, methods, chunk="auto")
        separate = {t: simulate_srp(snn, x, T, [t], chunk="auto")[t] for t in methods}
        checks["sweep_combined_equals_separate_bitwise"] = all(torch.equal(combined[t], separate[t]) for t in methods)
        checks["sweep_equals_per_step_loop_bitwise"] = all(
            torch.equal(combined[t], per_step_srp(snn, x, T, t)) for t in methods)
        sweep_times = measure({
            "sweep_combined_ours": lambda: simulate_srp(snn, x, T, methods, chunk="auto"),
            "sweep_separate_ours": lambda: [simulate_srp(snn, x, T, [t], chunk="auto") for t in methods],
            "sweep_separate_per_step_loop": lambda: [per_step_srp(snn, x, T, t) for t in methods],
        }, args.repeats, device)
        times.update(sweep_times)
        steps_separate = sum(T + t for t in methods)
        steps_combined = T * len(methods)
        ratios["separate_ours_over_combined (target >= 1.5)"] = (
            sweep_times["sweep_separate_ours"] / sweep_times["sweep_combined_ours"])
        ratios["separate_per_step_loop_over_combined"] = (
            sweep_times["sweep_separate_per_step_loop"] / sweep_times["sweep_combined_ours"])
        ratios["sweep_step_count_bound (separate steps / combined steps)"] = steps_separate / steps_combined
        sweep = {"methods": methods, "plan": sweep_plan.__dict__, "steps_separate": steps_separate,
                 "steps_combined": steps_combined}

    report = {"model": args.model, "batch": B, "T": T, "machine": start, "git_commit": git_commit(),
              "plan": plan.__dict__, "plan_cached": (cached_plan(snn, x) or plan).__dict__, "checks": checks,
              "seconds": times, "ratios": ratios, "sweep": sweep, "rounds_seconds": rounds,
              "definitions": {"a": "papers' per-step loop", "b": "SpikingJelly multi-step IFNode, layers on T*B",
                              "c": "ours, simulate(chunk='auto')", "d": "ReLU ANN, min(T forwards, one T*B forward)"},
              "command": "python benchmarks/engine.py " + " ".join(
                  f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()
                  if k not in ("out", "skip_sweep", "glibc_allocator") and v is not None)
              + (" --skip-sweep" if args.skip_sweep else "") + (" --glibc-allocator" if args.glibc_allocator else "")}
    for k, v in checks.items():
        print(f"{k:>48s}: {v}")
    print(f"{'plan (chunk=auto)':>48s}: {plan}")
    for k, v in times.items():
        print(f"{k:>48s}: {v:8.3f} s")
    for k, v in ratios.items():
        print(f"{k:>60s}: {v:6.3f}")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"engine_{args.model}_b{B}_T{T}_{device.type}.json"
    path.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {path}")


def convert_back_to_ann(ann: nn.Module) -> nn.Module:
    """A copy of the QCFS ANN to switch to ReLU (the SNN shares nothing with it)."""
    import copy
    return copy.deepcopy(ann)


if __name__ == "__main__":
    main()
