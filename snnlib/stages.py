"""The pipeline stages as functions of (config, experiment, seed, files): what the Snakemake rules call.

train     -> ANN checkpoint + report (ANN accuracy, quantized and quantization-free, training history)
convert   -> IF-neuron SNN checkpoint + report (thresholds, neuron counts)
evaluate  -> one simulation to T_max per tau (tau = 0: plain QCFS, tau > 0: SRP) -> accuracy at every T

Each stage dispatches on the experiment's `method` (absent = qcfs): qcfs is the QCFS/SRP recipe, cq the CQ recipe
(staged clamp-and-quantize training, BN-folded threshold-1 SNN with an IF input encoder, per-weight-precision
T-sweeps; docs/cq.md). Both write the same files with the same report keys; CQ adds its own.
"""
from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Callable

import torch

from . import checkpoint
from .methods.qcfs.activation import QCFS, qcfs_layers, set_activation_mode
from .methods.qcfs.guard import LambdaGuard
from .config import REPO_ROOT, ConfigError, experiment_hash, get_experiment, training_hash
from .methods.qcfs.conversion import convert
from .methods.cq.activation import ClampQuantize, GridQuantizer, configure_cq, set_cq_stage
from .methods.cq.conversion import ann_levels, ann_view, convert_cq, spike_counts, spiking_layer_kinds, spiking_layer_names
from .methods.cq.training import CQSchedule, train_cq
from .data.autoaugment import cifar10_autoaugment
from .data import (SplitBatches, TensorBatches, balanced_subset, cutout, get_info, imagenet_dataset, load_split,
                   random_crop_flip, streamed, to_float)
from .efficiency import EfficiencyTally
from .methods.cq.encoding import SpikeEncoder
from .metrics import SynOpsMeter
from .models import create_model
from .neurons import IFNeuron, if_neurons
from .provenance import provenance
from .simulation import cumulative_predictions, reset, run_steps, simulate
from .training import TrainSettings, calibrate_lambda, predict, predict_views, train
from .methods.cq.weight_quant import FLOAT_BITS, num_levels, quantize_weights


def data_root(cfg: dict) -> Path:
    root = Path(os.environ.get("SNNLIB_DATA") or cfg["data_root"])
    return root if root.is_absolute() else REPO_ROOT / root


def data_workers(cfg: dict, workers: int | None = None) -> int:
    """DataLoader processes that decode a streamed dataset (ImageNet): `workers` (the CLI's --workers), else the
    config's data_workers, else one per torch thread, i.e. per CPU core the job was given (--threads)."""
    if workers is None:
        workers = cfg.get("data_workers")
    return torch.get_num_threads() if workers is None else workers


def method_of(exp: dict) -> str:
    """qcfs unless the experiment says otherwise (the schema does not fill the key in, so adding it left the
    recipe hash, and with it the results and checkpoints, of every existing QCFS experiment unchanged)."""
    return exp.get("method", "qcfs")


def check_cq_experiment(exp: dict) -> None:
    """What the CQ recipe needs beyond the schema (which also checks it, workflow/schemas/config.schema.yaml)."""
    problems = []
    if exp["normalize"]:
        problems.append("normalize must be false: the spike encoder needs raw pixels in [0, 1]")
    if exp["eval"]["taus"] != [0]:
        problems.append(f"eval.taus must be [0] (SRP is a QCFS method), got {exp['eval']['taus']}")
    if "epochs" in exp["train"]:
        problems.append("train.epochs is not used by cq: set the epochs of each stage in cq.stages")
    if problems:
        raise ConfigError("method cq: " + "; ".join(problems))


def guard_of(exp: dict) -> LambdaGuard:
    """The experiment's lambda guard (activation.lambda_guard, lambda_lr_scale, lambda_weight_decay)."""
    act = exp["activation"]
    return LambdaGuard(mode=act["lambda_guard"]["mode"], min=act["lambda_guard"]["min"],
                       lr_scale=act["lambda_lr_scale"], weight_decay=act["lambda_weight_decay"])


def build_ann(exp: dict) -> torch.nn.Module:
    if method_of(exp) == "cq":
        return build_cq_ann(exp)
    info = get_info(exp["dataset"])
    act = exp["activation"]
    lam0 = act["lambda_init"] if isinstance(act["lambda_init"], (int, float)) else 1.0
    return create_model(exp["model"], num_classes=info.num_classes, in_channels=info.in_channels,
                        image_size=info.image_size, act=lambda: QCFS(act["L"], lam0))


def build_cq_ann(exp: dict) -> torch.nn.Module:
    """The CQ network of the experiment, its quantizer sites set to the experiment's grid (stage: quantize)."""
    check_cq_experiment(exp)
    info, cq = get_info(exp["dataset"]), exp["cq"]
    grid = dict(T=cq["T"], rounding=cq["rounding"], guard=cq["grid_guard"], clip_grad=cq["ste_clip_grad"])
    model = create_model(exp["model"], num_classes=info.num_classes, in_channels=info.in_channels,
                         image_size=info.image_size, act=lambda: ClampQuantize(**grid))
    if not any(isinstance(m, GridQuantizer) and m.site == "input" for m in model.modules()):
        raise ConfigError(f"method cq needs a CQ network with quantizer sites; {exp['model']!r} has none. "
                          "Use one of the *_cq models, vgg_star or lenet_cq (snnlib/models/cq_nets.py)")
    return configure_cq(model, **grid, quantize_pool=cq["quantize_pool"], quantize_input=cq["quantize_input"])


def input_fn(exp: dict, device: torch.device) -> Callable[[torch.Tensor], torch.Tensor]:
    info = get_info(exp["dataset"])
    # non_blocking: a streamed batch sits in pinned memory on CUDA runs, so its copy overlaps the work queued before
    return lambda xb: to_float(xb.to(device, non_blocking=True), info, exp["normalize"])


def ann_batch_size(exp: dict) -> int:
    """Batch of the ANN accuracy passes: 500 for the small in-memory images; for ImageNet the training batch, which
    is known to fit on the device (500 images through VGG-16 at 224x224 need ~15 GB of activations)."""
    return 500 if get_info(exp["dataset"]).in_memory else exp["train"]["batch_size"]


def eval_subset(exp: dict, y: torch.Tensor) -> torch.Tensor:
    """Indices of the evaluation images: a documented class-balanced subset, or the whole test set.

    `y` are the labels of the test split (SplitBatches.labels); for ImageNet they come from the class folders of
    the file list, so the subset is chosen without decoding an image, and only its images are read."""
    per_class = exp["eval"]["test_per_class"]
    if per_class is None:
        return torch.arange(len(y))
    return balanced_subset(y, per_class, exp["eval"]["subset_seed"])


def checkpoint_dir(out_model: Path, exp: dict) -> Path:
    """Per-recipe folder of training checkpoints: a changed recipe starts afresh in its own folder, and the old
    run's checkpoints stay where they were (nothing finished is overwritten)."""
    return Path(out_model).parent / "ckpt" / training_hash(exp)


def _identity(cfg: dict, exp_id: str, seed: int) -> dict:
    exp = get_experiment(cfg, exp_id)
    # L: quantization levels of the trained activation (QCFS L, CQ T)
    levels = exp["cq"]["T"] if method_of(exp) == "cq" else exp["activation"]["L"]
    return {"config": cfg["name"], "budget": cfg.get("budget"), "experiment": exp_id,
            "config_hash": experiment_hash(exp), "seed": seed,
            "dataset": exp["dataset"], "model": exp["model"], "L": levels}


def write_json(path: Path, obj: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1) + "\n")
    os.replace(tmp, path)


def _accuracies(model, data: SplitBatches, to_input, idx, views: dict, batch_size: int) -> dict:
    """{key}_full and {key}_subset (on data.subset(idx)) for every view of the network, in one pass over data."""
    y, out = data.labels.cpu(), {}
    for key, pred in predict_views(model, data, to_input, views, batch_size).items():
        pred = pred.cpu()
        out.update({f"{key}_full": float((pred == y).float().mean()),
                    f"{key}_subset": float((pred[idx] == y[idx]).float().mean())})
    return out


def ann_accuracies(model, data: SplitBatches, to_input, idx, batch_size: int = 500) -> dict:
    """Accuracy of the quantized ANN (ann_quantized_*) and of its quantization-free clip network (ann_clip_*), on
    all of the test data and on its subset idx. For QCFS also under the legacy names ann_qcfs_*."""
    views = {key: lambda m, mode=mode: set_activation_mode(m, mode)
             for mode, key in (("qcfs", "ann_quantized"), ("clip", "ann_clip"))}
    out = _accuracies(model, data, to_input, idx, views, batch_size)
    set_activation_mode(model, "qcfs")
    out.update({"ann_qcfs_full": out["ann_quantized_full"], "ann_qcfs_subset": out["ann_quantized_subset"]})
    return out


def cq_ann_accuracies(model, data: SplitBatches, to_input, idx, batch_size: int = 500) -> dict:
    """The CQ network at its grid T (ann_quantized_*) and with clamp only, its SNN's T -> inf limit (ann_clip_*)."""
    views = {key: lambda m, stage=stage: set_cq_stage(m, stage)
             for stage, key in (("clamp", "ann_clip"), ("quantize", "ann_quantized"))}
    return _accuracies(model, data, to_input, idx, views, batch_size)  # ends in the quantize stage


def run_train(cfg, exp_id, seed, out_model: Path, out_report: Path, device, log=print,
              workers: int | None = None) -> dict:
    exp = get_experiment(cfg, exp_id)
    if method_of(exp) == "cq":
        return run_train_cq(cfg, exp_id, seed, out_model, out_report, device, log, workers)
    t0 = time.time()
    data, test = _training_data(cfg, exp, seed, device, workers)
    torch.manual_seed(seed)
    model = build_ann(exp).to(device)
    to_input = input_fn(exp, device)
    t = exp["train"]
    lam = exp["activation"]["lambda_init"]
    calibrated = None
    if isinstance(lam, dict):
        # `samples` training images without augmentation (ImageNet: resized and centre-cropped), decoded once
        pick = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:lam["samples"]]
        calib = data.without_augmentation().images(pick)
        calibrated = calibrate_lambda(model, to_input(calib), lam["percentile"])
        del calib
        log(f"lambda initialised at the {lam['percentile']}th percentile of each layer's input: {calibrated}")
    settings = TrainSettings(epochs=t["epochs"], batch_size=t["batch_size"], lr=t["lr"], momentum=t["momentum"],
                             weight_decay=t["weight_decay"], schedule=t["schedule"], lambda_guard=guard_of(exp))
    ckpt = checkpoint_dir(out_model, exp) / "train_state.pt"
    hist = train(model, data.to(device), None, to_input, settings, seed, ckpt,
                 training_input(t["augment"], to_input), log, fingerprint=training_hash(exp))
    ident = _identity(cfg, exp_id, seed)
    checkpoint.save_model(out_model, model, ident)
    report = {**ident, **ann_accuracies(model, test, to_input, eval_subset(exp, test.labels), ann_batch_size(exp)),
              "lambda_calibrated": calibrated, "lambdas": [m.lam.item() for m in qcfs_layers(model)],
              "train_samples": int(len(data)), "history": hist["history"], "train_wall_s": time.time() - t0,
              "provenance": provenance(device), "experiment_config": exp}
    write_json(out_report, report)
    log(f"ANN accuracy: QCFS {report['ann_quantized_full']:.4f}, clip {report['ann_clip_full']:.4f} (full test set)")
    return report


def load_data(cfg, exp, split: str, seed: int, max_samples: int | None, device=None,
              workers: int | None = None) -> SplitBatches:
    """The batches of a split (data/batches.py), limited to `max_samples` images drawn with `seed` (all when None).

    In-memory datasets (MNIST, Fashion-MNIST, CIFAR, the proxy) load whole into one uint8 tensor. ImageNet
    (`in_memory: False` in data/registry.py) is never loaded whole: it streams from its ImageFolder through a
    DataLoader with `data_workers(cfg, workers)` processes (pinned memory when `device` is CUDA), the full split
    or the `max_samples` files drawn with `seed` (the smoke budgets); training crops each image afresh every epoch.
    A missing ImageFolder raises DatasetNotFoundError saying where it was looked for."""
    info = get_info(exp["dataset"])
    gen = torch.Generator().manual_seed(seed)
    if info.in_memory:
        x, y = load_split(exp["dataset"], split, data_root(cfg))
        if max_samples is not None:
            keep = torch.randperm(len(y), generator=gen)[:max_samples]
            x, y = x[keep], y[keep]
        return TensorBatches(x, y)
    data = streamed(imagenet_dataset(split, data_root(cfg)), data_workers(cfg, workers), device)
    if max_samples is not None:
        data = data.subset(torch.randperm(len(data), generator=gen)[:max_samples])
    return data


def _training_data(cfg, exp, seed, device=None, workers=None) -> tuple[SplitBatches, SplitBatches]:
    data = load_data(cfg, exp, "train", seed, exp["train"]["max_samples"], device, workers)
    test = load_data(cfg, exp, "test", exp["eval"]["subset_seed"], exp["eval"]["max_samples"], device, workers)
    return data, test


def training_input(aug: dict, to_input: Callable) -> Callable | None:
    """uint8 batch -> augmented network input, in the papers' order (spec srp_qcfs.md §1.5): random crop, flip and
    AutoAugment on the pixels, then normalisation, then Cutout (so its hole is 0 in normalised space).
    None when the recipe has no augmentation."""
    if not any(aug.values()):
        return None

    def prepare(xb, gen):
        if aug["crop_padding"] or aug["flip"]:
            xb = random_crop_flip(xb, aug["crop_padding"], gen, flip=aug["flip"])
        if aug["autoaugment"]:
            xb = cifar10_autoaugment(xb, gen)
        xb = to_input(xb)
        if aug["cutout"]:
            xb = cutout(xb, aug["cutout"], gen)
        return xb
    return prepare


def run_train_cq(cfg, exp_id, seed, out_model: Path, out_report: Path, device, log=print,
                 workers: int | None = None) -> dict:
    """CQ: relu -> clamp -> clamp + quantize, each stage a fine-tune of the previous (cq_training.py)."""
    exp = get_experiment(cfg, exp_id)
    t0 = time.time()
    data, test = _training_data(cfg, exp, seed, device, workers)
    torch.manual_seed(seed)
    model = build_cq_ann(exp).to(device)
    to_input = input_fn(exp, device)
    cq, idx, ann_batch = exp["cq"], eval_subset(exp, test.labels), ann_batch_size(exp)
    schedule = CQSchedule(epochs=cq["stages"], lr=cq["lr"], optimizer=cq["optimizer"], lr_decay=cq["lr_decay"],
                          weight_decay=cq["weight_decay"], batch_size=exp["train"]["batch_size"],
                          input_noise=cq["input_noise"])

    def stage_accuracy(m):
        pred = predict(m, test, to_input, ann_batch).cpu()
        return {"test_acc_full": float((pred == test.labels.cpu()).float().mean())}

    hist = train_cq(model, data.to(device), None, to_input, schedule, seed, checkpoint_dir(out_model, exp),
                    training_input(exp["train"]["augment"], to_input), log, fingerprint=training_hash(exp),
                    evaluate=stage_accuracy)
    ident = _identity(cfg, exp_id, seed)
    checkpoint.save_model(out_model, model, ident)
    stage_end = {r["stage"]: r.get("test_acc_full") for r in hist["history"] if r.get("stage_end")}
    report = {**ident, "method": "cq", **cq_ann_accuracies(model, test, to_input, idx, ann_batch),
              "stage_test_accuracy": stage_end, "train_samples": int(len(data)), "history": hist["history"],
              "train_wall_s": time.time() - t0, "provenance": provenance(device), "experiment_config": exp}
    write_json(out_report, report)
    log(f"CQ ANN accuracy (full test set): clamp+quantize T={cq['T']} {report['ann_quantized_full']:.4f}, "
        f"clamp only {report['ann_clip_full']:.4f}; at the end of each stage: {stage_end}")
    return report


def load_snn(exp: dict, path: Path, device) -> tuple[torch.nn.Module, dict]:
    model = build_ann(exp)
    snn = convert_cq(model) if method_of(exp) == "cq" else convert(model)
    meta = checkpoint.load_model_state(path, snn)
    return snn.to(device), meta


def run_convert(cfg, exp_id, seed, ann_path: Path, out_snn: Path, out_report: Path, device, log=print) -> dict:
    exp = get_experiment(cfg, exp_id)
    if method_of(exp) == "cq":
        return run_convert_cq(cfg, exp_id, seed, ann_path, out_snn, out_report, device, log)
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


def run_convert_cq(cfg, exp_id, seed, ann_path: Path, out_snn: Path, out_report: Path, device, log=print) -> dict:
    """Fold BN, swap every CQ site for an IF neuron (threshold 1, v0 = offset + guard) and the input for an encoder."""
    exp = get_experiment(cfg, exp_id)
    t0 = time.time()
    ann = build_cq_ann(exp)
    checkpoint.load_model_state(ann_path, ann)
    snn = convert_cq(set_cq_stage(ann, "quantize").eval())
    ident = _identity(cfg, exp_id, seed)
    checkpoint.save_model(out_snn, snn, ident)
    neurons = [n for n in if_neurons(snn) if not isinstance(n, SpikeEncoder)]
    report = {**ident, "method": "cq", "spiking_layers": len(neurons), "thresholds": [float(n.theta) for n in neurons],
              "v0_fraction": neurons[0].v0_fraction, "encoder": "IF, threshold 1 (Algorithm 2, encoding.py)",
              "convert_wall_s": time.time() - t0, "provenance": provenance(device)}
    write_json(out_report, report)
    log(f"converted a CQ network: {len(neurons)} IF layers (threshold 1, v0 {report['v0_fraction']:.6g}) "
        "behind an IF input encoder")
    return report


def eval_data(cfg, exp, device=None, workers: int | None = None) -> SplitBatches:
    """The evaluation images: the test split (or its `eval.max_samples` sample), then its `eval_subset`."""
    ev = exp["eval"]
    test = load_data(cfg, exp, "test", ev["subset_seed"], ev["max_samples"], device, workers)
    return test.subset(eval_subset(exp, test.labels))


def run_evaluate(cfg, exp_id, seed, tau: int, snn_path: Path, out_report: Path, device, log=print,
                 workers: int | None = None) -> dict:
    exp = get_experiment(cfg, exp_id)
    if method_of(exp) == "cq":
        return run_evaluate_cq(cfg, exp_id, seed, tau, snn_path, out_report, device, log, workers)
    ev = exp["eval"]
    if tau not in ev["taus"]:
        log(f"note: tau={tau} is not in the config's taus {ev['taus']}")
    t0 = time.time()
    data = eval_data(cfg, exp, device, workers)
    n = len(data)
    snn, _ = load_snn(exp, snn_path, device)
    to_input = input_fn(exp, device)
    correct = torch.zeros(ev["T_max"], dtype=torch.long)
    tally = EfficiencyTally(tau, ev["T_max"])  # SRP's pre-run is the first tau recorded steps
    meter = SynOpsMeter(snn)
    seen = 0
    for images, labels in data.in_order(ev["batch_size"]):
        xb = to_input(images)
        with meter.attached():
            out = simulate(snn, xb, ev["T_max"], taus=[tau], rule=ev["srp_rule"], chunk=ev["chunk"])[tau]
        tally.add(meter.take(), len(xb))
        correct += (cumulative_predictions(out).cpu() == labels.cpu()).sum(1)
        seen += len(labels)
        log(f"tau={tau}: {seen}/{n} images, acc@T_max so far {float(correct[-1]) / seen:.4f}")
    acc = (correct.double() / n).tolist()
    report = {**_identity(cfg, exp_id, seed), "method": "qcfs" if tau == 0 else "srp", "tau": tau,
              "srp_rule": ev["srp_rule"] if tau else None, "T_max": ev["T_max"], "n_images": int(n),
              "subset": "full test set" if ev["test_per_class"] is None else
              f"class-balanced, {ev['test_per_class']} per class, seed {ev['subset_seed']}",
              "accuracy": acc, "efficiency": tally.summary(meter.layer_sizes, meter.encoders),
              "eval_wall_s": time.time() - t0, "provenance": provenance(device)}
    write_json(out_report, report)
    return report


class _InputTotals:
    """Sum of the input current of every IF layer over the steps run while attached (float64)."""

    def __init__(self, snn: torch.nn.Module):
        self.totals: dict[str, torch.Tensor] = {}
        self.handles = [m.register_forward_pre_hook(self._hook(name)) for name, m in snn.named_modules()
                        if isinstance(m, IFNeuron)]

    def _hook(self, name):
        def add(module, inputs):
            x = inputs[0].to(torch.float64)
            x = x.reshape(module.steps, x.shape[0] // module.steps, *x.shape[1:]).sum(0)
            self.totals[name] = self.totals[name] + x if name in self.totals else x
        return add

    def detach(self) -> dict[str, torch.Tensor]:
        for h in self.handles:
            h.remove()
        return self.totals


class _LayerAgreement:
    """Running per-layer comparison of SNN spike counts at T (cq.md §4.8) with
    global: T x the quantized CNN's activation (errors of earlier layers included), and
    local:  the level of the layer's own total input, clamp(floor(P_T + v0), 0, T) (this layer's error only)."""

    def __init__(self):
        self.stats: dict[str, dict] = {}

    def add(self, counts: dict[str, torch.Tensor], references: dict[str, dict[str, torch.Tensor]]) -> None:
        for kind, levels in references.items():
            for name, c in counts.items():
                diff = (c.double() - levels[name].double()).abs()
                s = self.stats.setdefault(name, {}).setdefault(
                    kind, {"neurons": 0, "exact": 0, "abs_diff_sum": 0.0, "max_abs_diff": 0.0})
                s["neurons"] += diff.numel()
                s["exact"] += int((diff == 0).sum())
                s["abs_diff_sum"] += float(diff.sum())
                s["max_abs_diff"] = max(s["max_abs_diff"], float(diff.max()) if diff.numel() else 0.0)

    def report(self, kinds: dict[str, str]) -> list[dict]:
        rows = []
        for name, by_kind in self.stats.items():
            row = {"layer": name, "kind": kinds.get(name), "neurons": by_kind["global"]["neurons"]}
            for kind, s in by_kind.items():
                prefix = "" if kind == "global" else f"{kind}_"
                n = max(s["neurons"], 1)
                row.update({f"{prefix}exact_fraction": s["exact"] / n,
                            f"{prefix}mean_abs_diff_spikes": s["abs_diff_sum"] / n,
                            f"{prefix}max_abs_diff_spikes": s["max_abs_diff"]})
            rows.append(row)
        return rows


def run_evaluate_cq(cfg, exp_id, seed, tau: int, snn_path: Path, out_report: Path, device, log=print,
                    workers: int | None = None) -> dict:
    """One simulation to T_max per weight precision, cumulative readout -> accuracy at every T <= T_max.

    The float32 run also records, at T = cq.T, how many neurons of every layer fire exactly T x the quantized
    CNN's activation (the near-lossless claim), and how often the SNN's prediction equals the CNN's."""
    exp = get_experiment(cfg, exp_id)
    check_cq_experiment(exp)
    ev, cq = exp["eval"], exp["cq"]
    if tau != 0:
        raise ConfigError(f"method cq has no SRP variant: evaluate it with tau 0, not {tau}")
    t0 = time.time()
    data = eval_data(cfg, exp, device, workers)
    n = len(data)
    snn, _ = load_snn(exp, snn_path, device)
    to_input = input_fn(exp, device)
    T_grid, T_max = cq["T"], ev["T_max"]
    t_first = min(T_grid, T_max)
    view = ann_view(snn, T_grid)
    names = spiking_layer_names(snn)
    agreement, same_prediction = _LayerAgreement(), 0
    bits_list = [FLOAT_BITS] + [b for b in cq["weight_bits"] if b != FLOAT_BITS]
    accuracy = {}
    # operations are counted with float32 weights only (quantize_weights returns the SNN itself for those)
    tally, float_meter = EfficiencyTally(0, T_max), SynOpsMeter(snn)
    for bits in bits_list:
        net = quantize_weights(snn, bits)
        meter = float_meter if bits == FLOAT_BITS else None
        correct = torch.zeros(T_max, dtype=torch.long)
        for images, yb in data.in_order(ev["batch_size"]):  # a streamed split is read once per precision
            xb, yb = to_input(images), yb.cpu()
            reset(net)
            record = bits == FLOAT_BITS and t_first == T_grid
            totals = _InputTotals(net) if record else None
            # only around the SNN's own steps: the CNN view below shares its layers
            with meter.attached() if meter is not None else contextlib.nullcontext():
                out = run_steps(net, xb, t_first, ev["chunk"])
            if record:
                v0 = {name: m.v0_fraction for name, m in net.named_modules() if isinstance(m, IFNeuron)}
                local = {name: torch.floor(p + v0[name]).clamp(0, T_grid) for name, p in totals.detach().items()}
                agreement.add(spike_counts(net), {"global": ann_levels(view, xb, T_grid, names), "local": local})
                same_prediction += int((out.sum(0).argmax(-1) == view(xb).argmax(-1)).sum())
            if T_max > t_first:
                with meter.attached() if meter is not None else contextlib.nullcontext():
                    out = torch.cat([out, run_steps(net, xb, T_max - t_first, ev["chunk"])])
            if meter is not None:
                tally.add(meter.take(), len(xb))
            correct += (cumulative_predictions(out).cpu() == yb).sum(1)
        reset(net)
        accuracy[bits] = (correct.double() / n).tolist()
        log(f"weights {bits}-bit: accuracy at T=" + ", ".join(
            f"{t}: {accuracy[bits][t - 1]:.4f}" for t in (8, 16, 32, 64, 128, 256, 512, 1000) if t <= T_max)
            + f" ({time.time() - t0:.0f}s)")
    layers = agreement.report(spiking_layer_kinds(snn))
    report = {**_identity(cfg, exp_id, seed), "method": "cq", "tau": 0, "srp_rule": None, "cq_T": T_grid,
              "T_max": T_max, "n_images": int(n),
              "subset": "full test set" if ev["test_per_class"] is None else
              f"class-balanced, {ev['test_per_class']} per class, seed {ev['subset_seed']}",
              "accuracy": accuracy[FLOAT_BITS],
              "weight_bits": bits_list, "weight_levels": {str(b): None if b == FLOAT_BITS else num_levels(b)
                                                          for b in bits_list},
              "accuracy_by_weight_bits": {str(b): accuracy[b] for b in bits_list},
              "efficiency": tally.summary(float_meter.layer_sizes, float_meter.encoders) if tally.n_images else None,
              "layer_agreement_at_T": T_grid if layers else None, "layer_agreement": layers,
              "snn_equals_ann_prediction_at_T": same_prediction / n if layers else None,
              "eval_wall_s": time.time() - t0, "provenance": provenance(device)}
    write_json(out_report, report)
    for row in layers:
        log(f"T={T_grid} layer {row['layer']} ({row['kind']}, {row['neurons']} neurons): count = T x CNN activation "
            f"for {row['exact_fraction']:.4f} (mean |diff| {row['mean_abs_diff_spikes']:.4f}, max "
            f"{row['max_abs_diff_spikes']:.0f}); = level of its own input for {row['local_exact_fraction']:.4f} "
            f"(mean |diff| {row['local_mean_abs_diff_spikes']:.4f}, max {row['local_max_abs_diff_spikes']:.0f})")
    return report
