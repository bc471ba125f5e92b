"""The pipeline stages as functions of (config, experiment, seed, files): what the Snakemake rules call. Each
dispatches through the method registry (snnlib/methods/) and knows no method by name.

train     one training recipe (qcfs, cq, relu) -> ANN checkpoint + report (accuracy of its quantized and
          quantization-free views, history) + the ANN's per-image predictions on the evaluation images
convert   one conversion -> SNN checkpoint + report
evaluate  one method on its conversion's SNN -> per variant, accuracy and operations at every T <= T_max, and
          the prediction of every evaluation image at every T (outcomes.py)
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from . import checkpoint, outcomes
from .atomic import atomic_write_json as write_json  # a reader never sees half a report
from .config import ConfigError, experiment_hash, get_experiment, method_settings, training_hash
from .data import SplitBatches
from .efficiency import EfficiencyTally
from .engine import cumulative_predictions
from .experiment_data import (ann_batch_size, data_fingerprint, eval_subset, in_layout, input_fn, subset_description,
                              test_data, training_data, training_input)
from .methods import conversion_owner, get_method, get_recipe
from .metrics import SynOpsMeter
from .progress import Progress
from .provenance import provenance
from .training import predict_views

LOG = logging.getLogger(__name__)


def identity(cfg: dict, exp_id: str, seed: int, recipe: str) -> dict:
    """What a stored artefact was made for; loaders compare it with what the job expects."""
    exp = get_experiment(cfg, exp_id)
    return {"config": cfg["name"], "budget": cfg.get("budget"), "experiment": exp_id,
            "config_hash": experiment_hash(exp), "recipe": recipe, "recipe_hash": training_hash(exp, recipe),
            "seed": seed, "dataset": exp["dataset"], "model": exp["model"], "L": get_recipe(recipe).levels(exp)}


def expected_identity(cfg: dict, exp_id: str, seed: int, recipe: str) -> dict:
    """The identity keys a loader checks: the trained network's, not the evaluation settings' (changing `eval`
    or `methods` must not invalidate a trained ANN)."""
    ident = identity(cfg, exp_id, seed, recipe)
    return {k: ident[k] for k in ("config", "experiment", "seed", "recipe", "recipe_hash", "model", "L")}


def checkpoint_dir(out_model: Path, exp: dict, recipe: str) -> Path:
    """Per-recipe folder of training checkpoints: a changed recipe starts afresh in its own folder, and the old
    run's checkpoints stay where they were (nothing finished is overwritten)."""
    return Path(out_model).parent / "ckpt" / training_hash(exp, recipe)


@dataclass
class TrainContext:
    """What a recipe's `train` gets."""
    exp: dict
    model: torch.nn.Module
    data: SplitBatches
    test: SplitBatches
    to_input: Callable
    augment: Callable | None
    seed: int
    ckpt_dir: Path
    fingerprint: str
    device: torch.device
    log: Callable[[str], None]
    ann_batch: int


def run_train(cfg, exp_id, seed, recipe_name: str, out_model: Path, out_report: Path, out_outcomes: Path, device,
              log=None, workers: int | None = None) -> dict:
    """`log`: where progress goes (default: the modules' loggers, which `python -m snnlib` timestamps)."""
    exp = get_experiment(cfg, exp_id)
    recipe = get_recipe(recipe_name)
    recipe.check(exp)
    t0 = time.time()
    data, test = training_data(cfg, exp, seed, device, workers)
    torch.manual_seed(seed)
    model = in_layout(recipe.build(exp).to(device), exp)
    to_input = input_fn(exp, device)
    (log or LOG.info)(f"training recipe {recipe_name} of {exp_id} (seed {seed}) on {len(data)} images, on {device}")
    ctx = TrainContext(exp, model, data, test, to_input, training_input(exp["train"]["augment"], to_input), seed,
                       checkpoint_dir(out_model, exp, recipe_name), training_hash(exp, recipe_name), device,
                       log or logging.getLogger("snnlib.training").info,
                       ann_batch_size(exp))
    extra = recipe.train(ctx)
    recipe.final_view(model)
    ident = identity(cfg, exp_id, seed, recipe_name)
    checkpoint.save_model(out_model, model, ident)
    idx = eval_subset(exp, test.labels)
    preds = {k: p.cpu() for k, p in predict_views(model, test, to_input, recipe.views(), ann_batch_size(exp),
                                                  log or LOG.info).items()}
    recipe.final_view(model)
    y = test.labels.cpu()
    acc = {}
    for key, pred in preds.items():
        acc[f"{key}_full"] = float((pred == y).float().mean())
        acc[f"{key}_subset"] = float((pred[idx] == y[idx]).float().mean())
    outcomes.save(out_outcomes, y[idx].numpy(), idx.numpy(), {k: p[idx].numpy() for k, p in preds.items()})
    jobs = [r["job"] for r in extra.get("history", []) if "job" in r]
    training_jobs = [j for i, j in enumerate(jobs) if j not in jobs[:i]]  # more than one after a changed resume
    report = {**ident, **acc, **extra, "training_jobs": training_jobs, "outcomes": Path(out_outcomes).name,
              "train_samples": int(len(data)),
              "train_wall_s": time.time() - t0,
              "epoch_seconds": sum(r.get("seconds", 0.0) for r in extra.get("history", [])),
              "data_sha256": data_fingerprint(test, idx), "provenance": provenance(device),
              "experiment_config": exp}
    write_json(out_report, report)
    (log or LOG.info)(f"ANN accuracy (full test set): " + ", ".join(f"{k} {acc[k + '_full']:.4f}" for k in preds))
    return report


def build_snn(cfg, exp_id, seed, conversion: str, ann_path: Path | None, device, calibration=None):
    """The SNN of a conversion: its recipe's network (loaded from `ann_path` when given, its identity checked),
    converted by the conversion's owner."""
    exp = get_experiment(cfg, exp_id)
    owner = conversion_owner(conversion)
    ann = get_recipe(owner.recipe).build(exp)
    made_for = {}
    if ann_path is not None:
        made_for = checkpoint.load_model_state(ann_path, ann, expect=expected_identity(cfg, exp_id, seed, owner.recipe))
    ann = get_recipe(owner.recipe).final_view(ann)
    return owner, owner.convert(ann, exp, method_settings(exp, conversion), calibration), made_for


def run_convert(cfg, exp_id, seed, conversion: str, ann_path: Path, out_snn: Path, out_report: Path, device,
                log=None, workers: int | None = None) -> dict:
    log = log or LOG.info
    exp = get_experiment(cfg, exp_id)
    t0 = time.time()
    calibration = _calibration_images(cfg, exp, seed, device, workers)
    owner, snn, made_for = build_snn(cfg, exp_id, seed, conversion, ann_path, device, calibration)
    ident = {**made_for, "conversion": conversion}  # the trained network's own identity, never re-stamped
    checkpoint.save_model(out_snn, snn, ident)
    facts = owner.convert_report(snn)
    report = {**ident, **facts, "convert_wall_s": time.time() - t0, "provenance": provenance(device)}
    write_json(out_report, report)
    log(f"converted ({conversion}): {json.dumps(facts)[:300]}")
    return report


def _calibration_images(cfg, exp, seed, device, workers):
    """Lazily, `n` training images as network input (for data-based conversions, e.g. threshold balancing)."""
    def images(n: int) -> torch.Tensor:
        data, _ = training_data(cfg, exp, seed, device, workers)
        pick = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:n]
        return input_fn(exp, device)(data.without_augmentation().images(pick))
    return images


def load_snn(cfg, exp_id, seed, conversion: str, path: Path, device) -> torch.nn.Module:
    owner, snn, _ = build_snn(cfg, exp_id, seed, conversion, None, device)
    expect = {**expected_identity(cfg, exp_id, seed, owner.recipe), "conversion": conversion}
    checkpoint.load_model_state(path, snn, expect=expect)
    return in_layout(snn.to(device), get_experiment(cfg, exp_id))


def eval_data(cfg, exp, device=None, workers: int | None = None) -> tuple[SplitBatches, torch.Tensor]:
    """The evaluation images (the test split's `eval_subset`) and their indices in the test split."""
    test = test_data(cfg, exp, device, workers)
    idx = eval_subset(exp, test.labels)
    return test.subset(idx), (test, idx)


def run_evaluate(cfg, exp_id, seed, method_name: str, snn_path: Path, out_report: Path, out_outcomes: Path,
                 device, log=None, workers: int | None = None) -> dict:
    """The T-sweep of one method: throttled progress (images done, images/s, ETA, running accuracy at T_max) to
    `log` (default: this module's logger)."""
    log = log or LOG.info
    exp = get_experiment(cfg, exp_id)
    method = get_method(method_name)
    if method_name not in exp["methods"]:
        raise ConfigError(f"experiment {exp_id!r} does not list method {method_name!r}; its methods: "
                          f"{', '.join(exp['methods'])}")
    settings, ev = exp["methods"][method_name], exp["eval"]
    variants = method.variants(exp, settings)
    t0 = time.time()
    data, (test, idx) = eval_data(cfg, exp, device, workers)
    n, T_max = len(data), method.t_max(exp, settings)
    snn = load_snn(cfg, exp_id, seed, method.conversion, snn_path, device)
    to_input = input_fn(exp, device)
    evaluation = method.evaluator(snn, exp, settings)
    meter = SynOpsMeter(snn)
    tallies = {v.key: EfficiencyTally(v.t_pre, T_max) for v in variants}
    preds = {v.key: [] for v in variants}
    correct = {v.key: torch.zeros(T_max, dtype=torch.long) for v in variants}
    seen = 0
    log(f"{method_name}: T-sweep to T={T_max} of {len(variants)} variant(s) on {n} images "
        f"({subset_description(exp)}), batches of {ev['batch_size']}, on {device}")
    progress = Progress(f"{method_name} T-sweep", n, log, batches=-(-n // ev["batch_size"]))
    for images, labels in data.in_order(ev["batch_size"]):
        xb, labels = to_input(images), labels.cpu()
        runs = evaluation.run(xb, T_max, meter)
        recorded = meter.take()
        for v in variants:
            run = runs[v.key]
            pred = cumulative_predictions(run.outputs).cpu()
            preds[v.key].append(pred.to(torch.int16))
            correct[v.key] += (pred == labels).sum(1)
            if run.steps is not None:
                tallies[v.key].add(_select_steps(recorded, run.steps), len(labels))
        seen += len(labels)
        progress.update(len(labels), lambda: "accuracy at T_max " + ", ".join(
            f"{v.key or 'main'} {float(correct[v.key][-1]) / seen:.4f}" for v in variants))
    outcomes.save(out_outcomes, test.labels.cpu()[idx].numpy(), idx.cpu().numpy(),
                  {k: torch.cat(p, 1).numpy() for k, p in preds.items()})
    report = {**identity(cfg, exp_id, seed, method.recipe), "method": method_name, "conversion": method.conversion,
              "T_max": T_max, "n_images": int(n), "subset": subset_description(exp),
              "variants": [{"key": v.key, "label": v.label, "t_pre": v.t_pre, "params": v.params,
                            "accuracy": (correct[v.key].double() / n).tolist(),
                            "efficiency": tallies[v.key].summary(meter.layer_sizes, meter.encoders)
                            if tallies[v.key].n_images else None} for v in variants],
              **evaluation.report(), "outcomes": Path(out_outcomes).name,
              "data_sha256": data_fingerprint(test, idx), "eval_wall_s": time.time() - t0,
              "provenance": provenance(device)}
    write_json(out_report, report)
    return report


def _select_steps(recorded: dict, steps: list[int]) -> dict:
    """The meter's per-step arrays restricted to the steps one variant depended on, in order."""
    return {"acs": recorded["acs"][steps], "macs": recorded["macs"][steps], "dense": recorded["dense"][steps],
            "spikes": {name: s[steps] for name, s in recorded["spikes"].items()}}
