"""ANN training (QCFS recipe, docs/methods/qcfs.md, §7): SGD + momentum, cosine schedule stepped per epoch, weight
decay on every parameter (lambda included unless the lambda guard gives it its own), cross-entropy. The lambda
guard (methods/qcfs/guard.py) keeps every QCFS threshold positive: by default a floor applied after each step.

Data comes as batches of uint8 images (data/batches.py): in-memory splits are augmented a whole batch at a time
here, ImageNet arrives from a DataLoader already cropped and flipped per image. Every epoch ends with an atomic
checkpoint (model, optimizer, scheduler and all RNG state), so a killed job resumes where it stopped and reaches the
same weights as an uninterrupted run, bit for bit on the same device and thread count (tests/test_resume.py).
Within an epoch, a checkpoint is saved every `checkpoint_every_s` seconds and after a SIGTERM (a time limit,
preemption), and the resumed epoch continues at the next batch, also bit for bit (snnlib/preemption.py).
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from . import checkpoint
from .preemption import Checkpoints, Position, batches_per_epoch
from .provenance import git_commit
from .methods.qcfs import guard as lambda_guard
from .methods.qcfs.activation import qcfs_layers
from .methods.qcfs.guard import LambdaGuard
from .data.batches import SplitBatches, as_batches
from .progress import Progress, epoch_progress, training_eta

LOG = logging.getLogger(__name__)


@dataclass
class TrainSettings:
    epochs: int
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    crop_padding: int = 0
    flip: bool = False
    cutout: int = 0
    max_samples: int | None = None
    checkpoint_every_s: float | None = None  # mid-epoch checkpoints (snnlib/preemption.py); None: epoch ends only
    lambda_guard: LambdaGuard = field(default_factory=LambdaGuard)
    extra: dict = field(default_factory=dict)


def make_optimizer(model: nn.Module, s: TrainSettings):
    """SGD over all parameters in one group, or, when the lambda guard asks for it, the lambdas in a second group
    with their own learning rate (lr x lr_scale, so the schedule scales both) and weight decay."""
    g = s.lambda_guard
    if g.own_group(s.weight_decay):
        lams = {id(p) for p in lambda_guard.lambda_parameters(model)}
        groups = [{"params": [p for p in model.parameters() if id(p) not in lams]},
                  {"params": [p for p in model.parameters() if id(p) in lams], "lr": s.lr * g.lr_scale,
                   "weight_decay": s.weight_decay if g.weight_decay is None else g.weight_decay}]
    else:
        groups = model.parameters()
    opt = torch.optim.SGD(groups, lr=s.lr, momentum=s.momentum, weight_decay=s.weight_decay)
    if s.schedule == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(s.epochs, 1))
    elif s.schedule == "constant":
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    else:
        raise ValueError(f"unknown schedule {s.schedule!r}; valid: cosine, constant")
    return opt, sched


@torch.no_grad()
def calibrate_lambda(model: nn.Module, x: torch.Tensor, percentile: float) -> list[float]:
    """Data-based lambda initialisation: each QCFS layer's lambda <- the given percentile of its input on x.

    Layers are set front to back with the layers in front already clipped at their new lambda, so each
    percentile is taken of the input that layer will actually see."""
    layers = qcfs_layers(model)
    was_training = model.training
    model.eval()
    for m in layers:
        m.mode = "relu"
    seen: dict[int, torch.Tensor] = {}
    for i, layer in enumerate(layers):
        handle = layer.register_forward_hook(lambda mod, inp, out, i=i: seen.__setitem__(i, inp[0]))
        model(x)
        handle.remove()
        z = seen[i].flatten().float()
        k = max(1, int(math.ceil(percentile / 100.0 * z.numel())))
        lam = max(float(z.kthvalue(k).values), 1e-3)
        layer.lam.fill_(lam)
        layer.mode = "clip"
    for m in layers:
        m.mode = "qcfs"
    model.train(was_training)
    return [m.lam.item() for m in layers]


def train(model: nn.Module, x: torch.Tensor | SplitBatches, y: torch.Tensor | None,
          to_input: Callable[[torch.Tensor], torch.Tensor], s: TrainSettings, seed: int, ckpt_path: Path,
          augment: Callable | None = None, log: Callable[[str], None] | None = None,
          fingerprint: str | None = None) -> dict:
    """Train in place on `x` uint8 [N, C, H, W] with labels `y`, or on a split's batches `x` (y None);
    `to_input` turns a uint8 batch into the network's float input.

    Every epoch's order (and a streamed split's crops) is drawn from one generator seeded with `seed`, whose state
    each epoch's checkpoint saves. Resumes from `ckpt_path` if it holds a checkpoint of this run; returns the
    per-epoch history. `log` (default: this module's logger) gets a line per epoch and, throttled, the progress
    inside each epoch (progress.py)."""
    log = log or LOG.info
    data = as_batches(x, y)
    lambda_guard.install(model, s.lambda_guard)  # before the optimizer (softplus: it updates rho) and the resume
    opt, sched = make_optimizer(model, s)
    gen = torch.Generator().manual_seed(seed)
    if fingerprint is not None:  # a checkpoint of seed 0 must not seed the run of seed 1
        fingerprint = f"{fingerprint}-seed{seed}"
    state = checkpoint.load_training_state(ckpt_path, model, opt, sched, gen, fingerprint)
    history = state["history"] if state else []
    start = state["epoch"] if state else 0
    resume = state.get("position") if state else None  # saved mid-epoch: where in epoch start + 1
    saver = Checkpoints(ckpt_path, s.checkpoint_every_s, fingerprint, batches_per_epoch(data, s.batch_size), log)
    if state:
        log(f"resumed from {ckpt_path} after epoch {start}" if resume is None else
            f"resumed from {ckpt_path} in epoch {start + 1} after batch {resume['batch']}/{saver.n_batches}")
        now, then = checkpoint.run_context(model), state.get("context") or {}
        changed = {k: (then[k], now[k]) for k in now if k in then and then[k] != now[k]}
        if changed:
            log("note: resumed under another " + ", ".join(f"{k} ({a} -> {b})" for k, (a, b) in changed.items())
                + "; the final weights may differ in the last bits from an uninterrupted run's")
    job_seconds = []  # epochs trained by this job, for the ETA of the whole training
    for epoch in range(start, s.epochs):
        model.train()
        pos, resume = Position.begin(gen, resume), None  # a resumed epoch continues its sums and its order
        t0, total, correct, loss_sum = time.time() - pos.seconds, pos.total, pos.correct, pos.loss_sum
        progress = epoch_progress(f"epoch {epoch + 1}/{s.epochs}", len(data), s.batch_size, log)
        for images, labels in pos.batches(data, s.batch_size, gen):
            # `augment` turns the raw uint8 batch into the network input itself (pixel-space ops come first)
            xb = to_input(images) if augment is None else augment(images, gen)
            out = model(xb)
            labels = labels.to(out.device, non_blocking=True)
            loss = F.cross_entropy(out, labels)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            lambda_guard.after_step(model, s.lambda_guard)
            total += len(labels)
            loss_sum += loss.item() * len(labels)
            correct += int((out.argmax(1) == labels).sum())
            progress.update(len(labels), lambda: f"loss {loss_sum / total:.4f} train_acc {correct / total:.4f}")
            if saver.due(pos):  # every checkpoint_every_s, and after a SIGTERM (then it stops)
                at = pos.state(total, correct, loss_sum, time.time() - t0)
                saver.save(model, opt, sched, gen, epoch, history, at)
        sched.step()
        row = {"epoch": epoch + 1, "loss": loss_sum / total, "train_acc": correct / total,
               "lr": opt.param_groups[0]["lr"], "seconds": time.time() - t0,
               "lambdas": [round(m.lam.item(), 4) for m in qcfs_layers(model)],
               # the job that ran this epoch: a resumed run's epochs keep the context they were trained in
               "job": {**checkpoint.run_context(model), "git_commit": git_commit()}}
        history.append(row)
        job_seconds.append(row["seconds"])
        log(f"epoch {row['epoch']}/{s.epochs} loss {row['loss']:.4f} train_acc {row['train_acc']:.4f} "
            f"({row['seconds']:.1f}s, {total / max(row['seconds'], 1e-9):.1f} images/s"
            f"{training_eta(job_seconds, s.epochs - epoch - 1)}) lambdas {row['lambdas']}")
        saver.save(model, opt, sched, gen, epoch + 1, history)
    saver.finish()
    lambda_guard.release(model)  # a plain `lam` again, whatever the guard
    return {"history": history}


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor | SplitBatches, to_input: Callable,
            batch_size: int = 500) -> torch.Tensor:
    """Predicted classes of uint8 images `x`, or of every image of a split's batches, in order."""
    return predict_views(model, x, to_input, {"model": lambda m: None}, batch_size)["model"]


@torch.no_grad()
def predict_views(model: nn.Module, x: torch.Tensor | SplitBatches, to_input: Callable,
                  views: dict[str, Callable[[nn.Module], object]], batch_size: int = 500,
                  log: Callable[[str], None] | None = None) -> dict[str, torch.Tensor]:
    """Predicted classes under several views of one network (e.g. its QCFS and clip activations): each batch is
    read once and run under every view in turn, `views[key](model)` switching to that view. With `log`, throttled
    progress (a streamed test split can take minutes)."""
    model.eval()
    n = x.shape[0] if isinstance(x, torch.Tensor) else len(x)
    if isinstance(x, torch.Tensor):
        batches = (x[i:i + batch_size] for i in range(0, x.shape[0], batch_size))
    else:
        batches = (images for images, _ in x.in_order(batch_size))
    progress = Progress("ANN predictions", n, log, batches=math.ceil(n / batch_size)) if log else None
    preds: dict[str, list[torch.Tensor]] = {key: [] for key in views}
    for images in batches:
        xb = to_input(images)
        for key, switch_to in views.items():
            switch_to(model)
            preds[key].append(model(xb).argmax(1))
        if progress is not None:
            progress.update(len(images))
    return {key: torch.cat(p) if p else torch.empty(0, dtype=torch.int64) for key, p in preds.items()}
