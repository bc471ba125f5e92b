"""CQ's staged training schedule (docs/methods/cq.md, §2.4 [C, I]), one job with a documented schedule:

    stage relu      train the CNN with ReLU                              (cq.stages.relu epochs, lr cq.lr.relu)
    stage clamp     swap ReLU for clamp(0, 1), fine-tune                 (cq.stages.clamp, cq.lr.clamp)
    stage quantize  add Q_T after every clamp (and pool / input), fine-tune  (cq.stages.quantize, cq.lr.quantize)

Each stage starts from the previous stage's weights with a fresh optimizer (Adam by default, as the paper says;
the learning rate decays by `lr_decay` per epoch, StepLR(1, 0.7) in the authors' scripts [C]) and cross-entropy.
Training adds Gaussian pixel noise (sigma 0.01 in the authors' scripts [C]). Every epoch ends with an atomic
checkpoint per stage (ckpt/cq_<stage>.pt), so a killed job resumes inside the stage it was in, and a finished
stage is never retrained. Within an epoch, a checkpoint is saved every `train.checkpoint_every_s` seconds and
after a SIGTERM, and the resumed epoch continues at the next batch (snnlib/preemption.py).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ... import checkpoint
from ...preemption import Checkpoints, Position, batches_per_epoch
from ...provenance import git_commit
from .activation import CQ_STAGES, set_cq_stage
from ...data.batches import SplitBatches, as_batches
from ...progress import epoch_progress, training_eta

LOG = logging.getLogger(__name__)


@dataclass
class CQSchedule:
    epochs: dict[str, int]
    lr: dict[str, float]
    optimizer: str = "adam"
    lr_decay: float = 0.7
    weight_decay: float = 0.0
    batch_size: int = 128
    input_noise: float = 0.0
    checkpoint_every_s: float | None = None  # mid-epoch checkpoints (snnlib/preemption.py); None: epoch ends only
    extra: dict = field(default_factory=dict)


def make_optimizer(model: nn.Module, name: str, lr: float, weight_decay: float, lr_decay: float):
    if name == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    elif name == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=weight_decay)
    else:
        raise ValueError(f"unknown CQ optimizer {name!r}; valid: adam, sgd")
    return opt, torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=lr_decay)


def train_cq(model: nn.Module, x: torch.Tensor | SplitBatches, y: torch.Tensor | None,
             to_input: Callable[[torch.Tensor], torch.Tensor], schedule: CQSchedule, seed: int, ckpt_dir: Path,
             augment: Callable | None = None, log: Callable[[str], None] | None = None,
             fingerprint: str | None = None, evaluate: Callable[[nn.Module], dict] | None = None) -> dict:
    """Run the three stages in place on `x` uint8 [N, C, H, W] with labels `y`, or on a split's batches `x`
    (y None). Returns {"history": rows}; a stage's last row has "stage_end": True and the `evaluate(model)` results
    (e.g. test accuracy) at the end of that stage. `log` (default: this module's logger) gets a line per epoch and,
    throttled, the progress inside each epoch."""
    log = log or LOG.info
    data = as_batches(x, y)
    history: list[dict] = []
    job_seconds: list[float] = []  # epochs trained by this job, for the ETA of the whole schedule
    for index, stage in enumerate(CQ_STAGES):
        set_cq_stage(model, stage)
        epochs = schedule.epochs[stage]
        if epochs == 0:
            continue
        opt, sched = make_optimizer(model, schedule.optimizer, schedule.lr[stage], schedule.weight_decay,
                                    schedule.lr_decay)
        gen = torch.Generator().manual_seed(seed * len(CQ_STAGES) + index)
        path = Path(ckpt_dir) / f"cq_{stage}.pt"
        stage_print = f"{fingerprint}-seed{seed}:{stage}" if fingerprint else None
        state = checkpoint.load_training_state(path, model, opt, sched, gen, stage_print)
        start = state["epoch"] if state else 0
        resume = state.get("position") if state else None  # saved mid-epoch: where in epoch start + 1
        saver = Checkpoints(path, schedule.checkpoint_every_s, stage_print,
                            batches_per_epoch(data, schedule.batch_size), log)
        if state:
            history = state["history"]
            log(f"stage {stage}: resumed from {path} after epoch {start}/{epochs}" if resume is None else
                f"stage {stage}: resumed from {path} in epoch {start + 1}/{epochs} after batch "
                f"{resume['batch']}/{saver.n_batches}")
        for epoch in range(start, epochs):
            model.train()
            pos, resume = Position.begin(gen, resume), None  # a resumed epoch continues its sums and its order
            t0, total, correct, loss_sum = time.time() - pos.seconds, pos.total, pos.correct, pos.loss_sum
            progress = epoch_progress(f"stage {stage} epoch {epoch + 1}/{epochs}", len(data), schedule.batch_size,
                                      log)
            for images, labels in pos.batches(data, schedule.batch_size, gen):
                # `augment` turns the raw uint8 batch into the network input itself (pixel-space ops come first)
                xb = to_input(images) if augment is None else augment(images, gen)
                if schedule.input_noise:
                    xb = xb + schedule.input_noise * torch.randn(xb.shape, generator=gen).to(xb.device)
                out = model(xb)
                labels = labels.to(out.device, non_blocking=True)
                loss = F.cross_entropy(out, labels)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += len(labels)
                loss_sum += loss.item() * len(labels)
                correct += int((out.argmax(1) == labels).sum())
                progress.update(len(labels), lambda: f"loss {loss_sum / total:.4f} train_acc {correct / total:.4f}")
                if saver.due(pos):  # every checkpoint_every_s, and after a SIGTERM (then it stops)
                    at = pos.state(total, correct, loss_sum, time.time() - t0)
                    saver.save(model, opt, sched, gen, epoch, history, at)
            sched.step()
            row = {"stage": stage, "epoch": epoch + 1, "loss": loss_sum / total, "train_acc": correct / total,
                   "lr": opt.param_groups[0]["lr"], "seconds": time.time() - t0,
                   "job": {**checkpoint.run_context(model), "git_commit": git_commit()}}  # who trained this epoch
            if epoch + 1 == epochs:
                row["stage_end"] = True
                if evaluate is not None:
                    row.update(evaluate(model))
                    set_cq_stage(model, stage)
            history.append(row)
            job_seconds.append(row["seconds"])
            left = epochs - epoch - 1 + sum(schedule.epochs[s] for s in CQ_STAGES[index + 1:])
            log(f"stage {stage} epoch {row['epoch']}/{epochs} loss {row['loss']:.4f} train_acc "
                f"{row['train_acc']:.4f} ({row['seconds']:.1f}s, {total / max(row['seconds'], 1e-9):.1f} images/s"
                f"{training_eta(job_seconds, left)})"
                + (f" {({k: v for k, v in row.items() if k.startswith('test_')})}" if row.get("stage_end") else ""))
            saver.save(model, opt, sched, gen, epoch + 1, history)
    Checkpoints.finish()
    set_cq_stage(model, "quantize")
    return {"history": history}
