"""Which lambda guard keeps the QCFS ANN best: ResNet-20 on the 32x32x3 Fashion-MNIST proxy, the recipe under which
two lambdas went negative (lr 0.1, SGD momentum 0.9, weight decay 5e-4 on lambda too, crop/flip, lambda initialised
at the 99.9th percentile of each layer's input), shortened to a training subset and one epoch.

Every variant starts from the same weights, the same calibrated lambdas, the same images in the same order:

  none         the papers' plain parameter (the old path)
  floor        lambda <- max(lambda, 1e-3) after every step (the default)
  group        no guard, the lambdas in their own SGD group: lr x --group-lr-scale, no weight decay
  floor+group  both
  softplus     lambda = softplus(rho), rho trained

Records per variant: the least lambda seen at any training step (and at which layer and step), the final lambdas,
how many are <= 0, whether conversion accepts the model, the QCFS-ANN and clip-ANN accuracy on a class-balanced
test subset, and the wall time. Writes results/benchmarks/lambda_guard.json; when that file holds a run with the
same settings, this run's variants are merged into it, so the variants can be run one invocation at a time (each
variant's entry keeps its own commit and load average).

    python benchmarks/lambda_guard.py --samples 20000 --epochs 1 --test-per-class 100 --threads 1
    python benchmarks/lambda_guard.py --samples 20000 --variants floor     # ... one variant per call, merged
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from snnlib.config import validate  # noqa: E402
from snnlib.conversion import ConversionError  # noqa: E402
from snnlib.methods.qcfs.activation import qcfs_layers, set_activation_mode  # noqa: E402
from snnlib.methods.qcfs.conversion import convert  # noqa: E402
from snnlib.methods.qcfs.guard import LambdaGuard  # noqa: E402
from snnlib.provenance import device_description, git_commit  # noqa: E402
from snnlib.experiment_data import eval_subset, input_fn, load_data, training_input  # noqa: E402
from snnlib.methods import get_recipe  # noqa: E402
from snnlib.training import TrainSettings, calibrate_lambda, predict, train  # noqa: E402

VARIANTS = ("none", "floor", "group", "floor+group", "softplus")


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=5000, help="training images (seeded subset)")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--percentile", type=float, default=99.9, help="lambda initialisation percentile")
    ap.add_argument("--init-scale", type=float, default=1.0,
                    help="multiply the calibrated lambdas by this (< 1: a lower start, to provoke the failure)")
    ap.add_argument("--group-lr-scale", type=float, default=0.1, help="lambda lr / weight lr of the group variants")
    ap.add_argument("--floor", type=float, default=1e-3)
    ap.add_argument("--test-per-class", type=int, default=100, help="class-balanced test subset (100 = 1,000 images)")
    ap.add_argument("--no-augment", action="store_true", help="drop the crop/flip of the failing recipe")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "benchmarks" / "lambda_guard.json")
    return ap.parse_args()


def experiment(args) -> tuple[dict, dict]:
    """The dropped CPU proxy's ResNet-20 experiment, resolved by the config schema, at this run's budget."""
    raw = {"name": "lambda_guard_benchmark", "experiments": {"e": {
        "dataset": "fashion_mnist_proxy32", "model": "resnet20", "seeds": [args.seed], "normalize": True,
        "activation": {"L": 4, "lambda_init": {"percentile": args.percentile, "samples": 512}},
        "train": {"epochs": args.epochs, "max_samples": args.samples, "batch_size": args.batch_size, "lr": args.lr,
                  "momentum": 0.9, "weight_decay": 5e-4, "schedule": "cosine",
                  "augment": {"crop_padding": 0 if args.no_augment else 4, "flip": not args.no_augment}},
        "eval": {"test_per_class": args.test_per_class, "subset_seed": 0}}}}
    cfg = validate(raw)
    return cfg, cfg["experiments"]["e"]


def guard(name: str, args) -> LambdaGuard:
    mode = {"none": "none", "floor": "floor", "group": "none", "floor+group": "floor", "softplus": "softplus"}[name]
    if "group" in name:
        return LambdaGuard(mode=mode, min=args.floor, lr_scale=args.group_lr_scale, weight_decay=0.0)
    return LambdaGuard(mode=mode, min=args.floor)


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    cfg, exp = experiment(args)
    load_at_start = os.getloadavg()[0]
    t_load = time.time()
    data = load_data(cfg, exp, "train", args.seed, args.samples)
    test = load_data(cfg, exp, "test", 0, None)
    idx = eval_subset(exp, test.labels)
    x_test, y_test = test.images(idx), test.labels[idx]
    to_input = input_fn(exp, device)
    augment = training_input(exp["train"]["augment"], to_input)

    torch.manual_seed(args.seed)
    start = get_recipe("qcfs").build(exp)
    pick = torch.randperm(len(data), generator=torch.Generator().manual_seed(args.seed))[:512]
    calibrated = calibrate_lambda(start, to_input(data.images(pick)), args.percentile)
    if args.init_scale != 1.0:
        with torch.no_grad():
            for m in qcfs_layers(start):
                m.lam.mul_(args.init_scale)
    init = [m.lam.item() for m in qcfs_layers(start)]
    print(f"data ready in {time.time() - t_load:.1f}s; lambda init {[round(v, 3) for v in init]}", flush=True)
    state0, results = {k: v.clone() for k, v in start.state_dict().items()}, {}
    for name in args.variants:
        model = get_recipe("qcfs").build(exp)
        model.load_state_dict(state0)
        seen = {"min": float("inf"), "layer": None, "step": None, "steps": 0, "nonpositive_steps": 0}

        def watch(layer_index):
            def hook(mod, inp):
                if not mod.training:
                    return
                v = float(mod.lam.detach())
                if layer_index == 0:
                    seen["steps"] += 1
                if v < seen["min"]:
                    seen.update(min=v, layer=layer_index, step=seen["steps"])
            return hook
        handles = [m.register_forward_pre_hook(watch(i)) for i, m in enumerate(qcfs_layers(model))]
        s = TrainSettings(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, momentum=0.9,
                          weight_decay=5e-4, schedule="cosine", lambda_guard=guard(name, args))
        ckpt = Path(tempfile.gettempdir()) / f"lambda_guard_{os.getpid()}_{name.replace('+', '_')}.pt"
        t0 = time.time()
        hist = train(model, data, None, to_input, s, args.seed, ckpt, augment, log=lambda msg: print(f"  {msg}"))
        wall = time.time() - t0
        ckpt.unlink(missing_ok=True)
        for h in handles:
            h.remove()
        final = [m.lam.item() for m in qcfs_layers(model)]
        seen_min = min(seen["min"], min(final))  # the hook sees lambda before each step; the last step's result too
        accs = {}
        for mode in ("qcfs", "clip"):
            set_activation_mode(model, mode)
            accs[mode] = float((predict(model, x_test, to_input) == y_test).float().mean())
        set_activation_mode(model, "qcfs")
        try:
            convert(model)
            converts, why = True, None
        except ConversionError as e:
            converts, why = False, str(e)
        results[name] = {
            "guard": vars(s.lambda_guard), "min_lambda_during_training": seen_min,
            "min_lambda_layer": seen["layer"] if seen["min"] <= min(final) else final.index(min(final)),
            "min_lambda_step": seen["step"] if seen["min"] <= min(final) else "end",
            "final_lambdas": [round(v, 4) for v in final], "nonpositive_final_lambdas": sum(v <= 0 for v in final),
            "converts": converts, "conversion_error": why,
            "ann_qcfs_acc": accs["qcfs"], "ann_clip_acc": accs["clip"],
            "train_loss": hist["history"][-1]["loss"], "train_acc": hist["history"][-1]["train_acc"],
            "train_wall_s": round(wall, 1), "load_average_at_start": load_at_start, "git_commit": git_commit()}
        print(f"{name}: min lambda {seen_min:.4f}, final <=0: {results[name]['nonpositive_final_lambdas']}, "
              f"converts {converts}, QCFS ANN {accs['qcfs']:.4f}, clip {accs['clip']:.4f}, {wall:.0f}s", flush=True)
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                if k not in ("variants", "out", "threads")}
    if args.out.exists():
        old = json.loads(args.out.read_text())
        if old.get("settings") == settings and old.get("lambda_init") == init:
            for r in old["results"].values():
                r.setdefault("git_commit", old.get("git_commit"))
                r.setdefault("load_average_at_start", old.get("load_average_at_start"))
            results = {**old["results"], **results}
            results = {k: results[k] for k in VARIANTS if k in results}
            print(f"merged with the variants already in {args.out}: {', '.join(results)}")
    safe = {k: r for k, r in results.items() if r["converts"]}
    best = max(safe, key=lambda k: safe[k]["ann_qcfs_acc"]) if safe else None
    report = {"what": "ResNet-20 QCFS on the Fashion-MNIST 32x32x3 proxy: the lambda guards compared",
              "settings": settings,
              "train_samples": len(data), "test_images": len(y_test), "lambda_calibrated": calibrated,
              "lambda_init": init, "results": results, "best_converting_variant": best,
              "device": device_description(device), "threads": torch.get_num_threads(),
              "load_average_at_start": load_at_start, "torch": torch.__version__, "git_commit": git_commit(),
              "command": "python benchmarks/lambda_guard.py " + " ".join(sys.argv[1:])}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"best converting variant: {best}; wrote {args.out}")


if __name__ == "__main__":
    main()
