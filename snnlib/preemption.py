"""Stopping a training job without losing its work: mid-epoch checkpoints on a time budget and on SIGTERM.

SLURM sends SIGTERM to every process of a job that reaches its time limit, is preempted or is cancelled, and SIGKILL
KillWait seconds later (30 s by default). The `train` command (cli.py) runs inside `stop_on_signals()`: a SIGTERM
then only sets a flag. The training loop finishes the batch in flight, saves a checkpoint at that batch boundary
and raises `Stopped`; the command exits with code 143 and one line saying where it stopped. Snakemake's retry (or
SLURM's requeue) runs the same command, which resumes at the next batch. Once the loop is over (`finish`), a
SIGTERM kills at once again: everything trained is saved, and what is left (the ANN's accuracy) is redone.

Independently, the loop saves every `train.checkpoint_every_s` seconds (600 by default), so a SIGKILL (a node
failure, an OOM kill, `kill -9`) costs at most that much training.

A mid-epoch checkpoint is an epoch-end checkpoint (model, optimizer, scheduler, generator and RNG states, the
finished epochs' history, `epoch` = epochs finished) with one more entry, `position`:

    batch            batches of the current epoch already trained
    epoch_generator  the generator's state when the epoch began: it redraws the epoch's order
    total, correct, loss_sum, seconds   the epoch's running sums so far

and `generator` holds the state after the last trained batch (the next batch's augmentation draws from it). The
resumed epoch redraws its order from `epoch_generator`, starts at batch `batch` (data/batches.py `shuffled(...,
start=)`), and so trains the same batches with the same random draws as the uninterrupted run: bit-identical
weights and history on the CPU (tests/test_preemption.py).
"""
from __future__ import annotations

import math
import os
import signal
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch

from . import checkpoint

STOP_SIGNALS = (signal.SIGTERM,)
EXIT_CODE = 128 + signal.SIGTERM  # what a shell reports for a process killed by SIGTERM

_requested: list[int] = []      # signals received while stop_on_signals was active and not yet acted upon
_installed: dict[int, object] = {}  # signal -> the handler stop_on_signals replaced


class Stopped(RuntimeError):
    """Training stopped on a signal after saving its checkpoint; the same command resumes it."""


def _note(signum, frame) -> None:
    _requested.append(signum)


def stop_requested() -> bool:
    return bool(_requested)


def _restore() -> None:
    for sig, handler in _installed.items():
        signal.signal(sig, handler)
    _installed.clear()


def release() -> None:
    """Training is over: signals act as they did before stop_on_signals again, and one that came after the
    loop's last look is delivered now (the process dies of it, as it would have)."""
    if threading.current_thread() is not threading.main_thread():
        return
    _restore()
    pending, _requested[:] = list(_requested), []
    for sig in pending[:1]:
        os.kill(os.getpid(), sig)


class stop_on_signals:
    """While active (main thread only; elsewhere a no-op), SIGTERM sets a flag that the training loop acts upon
    at its next batch boundary, instead of killing the process."""

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            _requested.clear()
            for sig in STOP_SIGNALS:
                _installed[sig] = signal.signal(sig, _note)
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            release()
        else:  # Stopped (the signal was acted upon) or another failure: nothing left to deliver
            if threading.current_thread() is threading.main_thread():
                _restore()
            _requested.clear()
        return False


@dataclass
class Position:
    """Where an epoch is: see the module docstring."""
    epoch_generator: torch.Tensor
    batch: int = 0
    total: int = 0
    correct: int = 0
    loss_sum: float = 0.0
    seconds: float = 0.0

    @classmethod
    def begin(cls, gen: torch.Generator, resume: dict | None = None) -> Position:
        """A fresh epoch (call before its order is drawn), or the interrupted one a checkpoint's `position`
        describes."""
        return cls(gen.get_state()) if resume is None else cls(**resume)

    def batches(self, data, batch_size: int, gen: torch.Generator) -> Iterator:
        """The epoch's batches from `self.batch` on. Resumed, the order is redrawn from the epoch's first state,
        then `gen` is put back to the state after the last trained batch."""
        if self.batch == 0:
            yield from data.shuffled(batch_size, gen)
            return
        after = gen.get_state()
        gen.set_state(self.epoch_generator)
        rest = data.shuffled(batch_size, gen, start=self.batch)
        first = next(rest, None)  # draws the order (and a streamed epoch's seed)
        gen.set_state(after)
        if first is not None:
            yield first
            yield from rest

    def state(self, total: int, correct: int, loss_sum: float, seconds: float) -> dict:
        """What a mid-epoch checkpoint stores, with the running sums of the loop."""
        self.total, self.correct, self.loss_sum, self.seconds = total, correct, loss_sum, seconds
        return asdict(self)


class Checkpoints:
    """When and where a training loop saves: at every epoch end, every `every_s` seconds (None: never) at a batch
    boundary, and at the first batch boundary after a SIGTERM, after which it raises Stopped."""

    def __init__(self, path: Path, every_s: float | None, fingerprint: str | None, n_batches: int,
                 log: Callable[[str], None] = print):
        self.path, self.every_s, self.fingerprint, self.n_batches = Path(path), every_s, fingerprint, n_batches
        self.log, self.last = log, time.monotonic()

    def due(self, pos: Position) -> bool:
        """Count the batch just trained; True if a mid-epoch checkpoint is due now (never after the epoch's last
        batch: the epoch-end one follows)."""
        pos.batch += 1
        if pos.batch >= self.n_batches:
            return False
        return stop_requested() or (self.every_s is not None and time.monotonic() - self.last >= self.every_s)

    def save(self, model, opt, sched, gen: torch.Generator, epoch: int, history: list,
             position: dict | None = None) -> None:
        """Save (`epoch` finished epochs, plus `position` mid-epoch); then raise Stopped if a signal asked to."""
        checkpoint.save_training_state(self.path, model, opt, sched, gen, epoch, history, self.fingerprint,
                                       position=position)
        self.last = time.monotonic()
        if position:  # the epoch-end save has its own line (the epoch's loss and accuracy)
            self.log(f"checkpoint saved in epoch {epoch + 1} after batch {position['batch']}/{self.n_batches}")
        if stop_requested():
            sig = signal.Signals(_requested[0]).name
            where = (f"in epoch {epoch + 1} after batch {position['batch']}/{self.n_batches}" if position
                     else f"after epoch {epoch}")
            _requested.clear()
            raise Stopped(f"{sig}: training stopped {where}, checkpoint saved to {self.path}; run the same "
                          "command again to resume from there")

    @staticmethod
    def finish() -> None:
        """The loop is over: a SIGTERM from now on kills at once (see release)."""
        release()


def batches_per_epoch(data, batch_size: int) -> int:
    return math.ceil(len(data) / batch_size)
