"""The pipeline stages as functions of (config, experiment, seed, files): what the Snakemake rules call.

train     -> QCFS ANN checkpoint + report (ANN accuracy, quantized and quantization-free, training history)
convert   -> IF-neuron SNN checkpoint + report (thresholds, neuron counts)
evaluate  -> one simulation to T_max per tau (tau = 0: plain QCFS, tau > 0: SRP) -> accuracy at every T
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Callable

import torch

from . import checkpoint
from .activations import QCFS, qcfs_layers, set_activation_mode
from .config import REPO_ROOT, experiment_hash, get_experiment
from .conversion import convert
from .data import balanced_subset, cutout, get_info, load_split, random_crop_flip, to_float
from .models import create_model
from .neurons import if_neurons
from .provenance import provenance
from .simulation import cumulative_predictions, simulate
from .training import TrainSettings, calibrate_lambda, predict, train


def data_root(cfg: dict) -> Path:
    root = Path(os.environ.get("SNNLIB_DATA") or cfg["data_root"])
    return root if root.is_absolute() else REPO_ROOT / root


def build_ann(exp: dict) -> torch.nn.Module:
    info = get_info(exp["dataset"])
    act = exp["activation"]
    lam0 = act["lambda_init"] if isinstance(act["lambda_init"], (int, float)) else 1.0
    return create_model(exp["model"], num_classes=info.num_classes, in_channels=info.in_channels,
                        image_size=info.image_size, act=lambda: QCFS(act["L"], lam0))


def input_fn(exp: dict, device: torch.device) -> Callable[[torch.Tensor], torch.Tensor]:
    info = get_info(exp["dataset"])
    return lambda xb: to_float(xb.to(device), info, exp["normalize"])


def eval_subset(exp: dict, y: torch.Tensor) -> torch.Tensor:
    """Indices of the evaluation images: a documented class-balanced subset, or the whole test set."""
    per_class = exp["eval"]["test_per_class"]
    if per_class is None:
        return torch.arange(len(y))
    return balanced_subset(y, per_class, exp["eval"]["subset_seed"])


def _identity(cfg: dict, exp_id: str, seed: int) -> dict:
    exp = get_experiment(cfg, exp_id)
    return {"config": cfg["name"], "experiment": exp_id, "config_hash": experiment_hash(exp), "seed": seed,
            "dataset": exp["dataset"], "model": exp["model"], "L": exp["activation"]["L"]}


def write_json(path: Path, obj: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1) + "\n")
    os.replace(tmp, path)


def ann_accuracies(model, x, y, to_input, idx) -> dict:
    """Accuracy of the QCFS ANN and of its quantization-free clip network, on all of x and on x[idx]."""
    out = {}
    for mode in ("qcfs", "clip"):
        set_activation_mode(model, mode)
        pred = predict(model, x, to_input).cpu()
        out[f"ann_{mode}_full"] = float((pred == y).float().mean())
        out[f"ann_{mode}_subset"] = float((pred[idx] == y[idx]).float().mean())
    set_activation_mode(model, "qcfs")
    return out


def run_train(cfg, exp_id, seed, out_model: Path, out_report: Path, device, log=print) -> dict:
    exp = get_experiment(cfg, exp_id)
    t0 = time.time()
    root = data_root(cfg)
    x, y = load_split(exp["dataset"], "train", root)
    xt, yt = load_split(exp["dataset"], "test", root)
    torch.manual_seed(seed)
    model = build_ann(exp).to(device)
    to_input = input_fn(exp, device)
    t = exp["train"]
    if t["max_samples"] is not None:
        keep = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))[:t["max_samples"]]
        x, y = x[keep], y[keep]
    lam = exp["activation"]["lambda_init"]
    calibrated = None
    if isinstance(lam, dict):
        calib = x[torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:lam["samples"]]]
        calibrated = calibrate_lambda(model, to_input(calib), lam["percentile"])
        log(f"lambda initialised at the {lam['percentile']}th percentile of each layer's input: {calibrated}")
    aug = t["augment"]

    def augment(xb, gen):
        if aug["crop_padding"] or aug["flip"]:
            xb = random_crop_flip(xb, aug["crop_padding"], gen, flip=aug["flip"])
        if aug["cutout"]:
            xb = cutout(xb, aug["cutout"], gen)
        return xb

    settings = TrainSettings(epochs=t["epochs"], batch_size=t["batch_size"], lr=t["lr"], momentum=t["momentum"],
                             weight_decay=t["weight_decay"], schedule=t["schedule"])
    ckpt = Path(out_model).parent / "ckpt" / "train_state.pt"
    hist = train(model, x.to(device), y.to(device), to_input, settings, seed, ckpt,
                 augment if any(aug.values()) else None, log, fingerprint=experiment_hash(exp))
    ident = _identity(cfg, exp_id, seed)
    checkpoint.save_model(out_model, model, ident)
    report = {**ident, **ann_accuracies(model, xt, yt, to_input, eval_subset(exp, yt)),
              "lambda_calibrated": calibrated, "lambdas": [m.lam.item() for m in qcfs_layers(model)],
              "train_samples": int(len(y)), "history": hist["history"], "train_wall_s": time.time() - t0,
              "provenance": provenance(device), "experiment_config": exp}
    write_json(out_report, report)
    log(f"ANN accuracy: QCFS {report['ann_qcfs_full']:.4f}, clip {report['ann_clip_full']:.4f} (full test set)")
    return report


def load_snn(exp: dict, path: Path, device) -> tuple[torch.nn.Module, dict]:
    model = build_ann(exp)
    snn = convert(model)
    meta = checkpoint.load_model_state(path, snn)
    return snn.to(device), meta


def run_convert(cfg, exp_id, seed, ann_path: Path, out_snn: Path, out_report: Path, device, log=print) -> dict:
    exp = get_experiment(cfg, exp_id)
    t0 = time.time()
    ann = build_ann(exp)
    checkpoint.load_model_state(ann_path, ann)
    snn = convert(ann)
    ident = _identity(cfg, exp_id, seed)
    checkpoint.save_model(out_snn, snn, ident)
    neurons = if_neurons(snn)
    report = {**ident, "spiking_layers": len(neurons), "thresholds": [float(n.theta) for n in neurons],
              "v0_fraction": neurons[0].v0_fraction, "convert_wall_s": time.time() - t0,
              "provenance": provenance(device)}
    write_json(out_report, report)
    log(f"converted {len(neurons)} QCFS layers to IF layers; thresholds {report['thresholds']}")
    return report


def run_evaluate(cfg, exp_id, seed, tau: int, snn_path: Path, out_report: Path, device, log=print) -> dict:
    exp = get_experiment(cfg, exp_id)
    ev = exp["eval"]
    if tau not in ev["taus"]:
        log(f"note: tau={tau} is not in the config's taus {ev['taus']}")
    t0 = time.time()
    x, y = load_split(exp["dataset"], "test", data_root(cfg))
    idx = eval_subset(exp, y)
    x, y = x[idx], y[idx]
    snn, _ = load_snn(exp, snn_path, device)
    to_input = input_fn(exp, device)
    correct = torch.zeros(ev["T_max"], dtype=torch.long)
    for i in range(0, len(y), ev["batch_size"]):
        xb = to_input(x[i:i + ev["batch_size"]])
        out = simulate(snn, xb, ev["T_max"], taus=[tau], rule=ev["srp_rule"], chunk=ev["chunk"])[tau]
        correct += (cumulative_predictions(out).cpu() == y[i:i + ev["batch_size"]]).sum(1)
        log(f"tau={tau}: {min(i + ev['batch_size'], len(y))}/{len(y)} images, "
            f"acc@T_max so far {float(correct[-1]) / min(i + ev['batch_size'], len(y)):.4f}")
    acc = (correct.double() / len(y)).tolist()
    report = {**_identity(cfg, exp_id, seed), "method": "qcfs" if tau == 0 else "srp", "tau": tau,
              "srp_rule": ev["srp_rule"] if tau else None, "T_max": ev["T_max"], "n_images": int(len(y)),
              "subset": "full test set" if ev["test_per_class"] is None else
              f"class-balanced, {ev['test_per_class']} per class, seed {ev['subset_seed']}",
              "accuracy": acc, "eval_wall_s": time.time() - t0, "provenance": provenance(device)}
    write_json(out_report, report)
    return report
