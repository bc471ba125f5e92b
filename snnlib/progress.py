"""Logs of the pipeline's jobs: timestamped lines, and throttled progress inside long loops.

Every module logs through its own `logging.getLogger(__name__)`; `configure()` (called once by `python -m snnlib`)
sends the `snnlib` loggers' lines to stderr as

    2026-11-30T04:15:02Z INFO snnlib.training: epoch 3/10: batch 120/469, 15360/60000 images (25.6%), ...

(UTC). A Snakemake rule redirects its job's stdout and stderr into the job's log file,
logs/<run name>/<rule>/<job>.log, so `tail -f` on that file follows a running job (README, "Logs").

`Progress` reports a loop's progress (items done / total, rate, elapsed, ETA) at most once every `every_s` seconds
(`SNNLIB_PROGRESS_S`, default 15), and once more when the loop finishes if asked. It only reads a clock and the
counts the loop keeps anyway, so logging never changes a result.
"""
from __future__ import annotations

import logging
import math
import os
import sys
import time
from typing import Callable

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
DATE_FORMAT = "%Y-%m-%dT%H:%M:%SZ"  # UTC: jobs on several machines (SLURM) log comparable times
DEFAULT_EVERY_S = 15.0
CLOCK = time.monotonic  # what a Progress reads unless given a clock (tests put a fake one here)


def configure(level: int = logging.INFO, stream=None) -> logging.Handler:
    """Send the `snnlib` loggers' records at `level` and above to `stream` (default: stderr, read at call time),
    timestamped. Idempotent: a second call replaces the handler of the first instead of doubling every line."""
    logger = logging.getLogger("snnlib")
    for old in [h for h in logger.handlers if getattr(h, "snnlib_handler", False)]:
        logger.removeHandler(old)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    formatter = logging.Formatter(FORMAT, DATE_FORMAT)
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    handler.snnlib_handler = True
    logger.addHandler(handler)
    logger.setLevel(level)
    return handler


def every_s_default() -> float:
    """Seconds between two progress lines: SNNLIB_PROGRESS_S if set (a positive number), else 15."""
    raw = os.environ.get("SNNLIB_PROGRESS_S")
    if not raw:
        return DEFAULT_EVERY_S
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"SNNLIB_PROGRESS_S must be a number of seconds, got {raw!r}") from None
    if not value > 0:
        raise ValueError(f"SNNLIB_PROGRESS_S must be > 0, got {raw!r}")
    return value


def duration(seconds: float) -> str:
    """'0:01:05' (h:mm:ss), '?' when unknown."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "?"
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class Progress:
    """Throttled progress of one loop over `total` items (images) in `batches` steps (optional).

    `update(n)` after every batch of n items: logs `what: batch i/batches, done/total items (pct), rate items/s,
    elapsed, ETA` (+ "; detail") when `every_s` seconds have passed since the last line (or since the start), and
    when the loop finishes if `final`. The clock is injectable (tests use a fake one)."""

    def __init__(self, what: str, total: int | None, log: Callable[[str], None], *, batches: int | None = None,
                 unit: str = "images", every_s: float | None = None, final: bool = True,
                 clock: Callable[[], float] | None = None):
        self.what, self.total, self.log, self.batches, self.unit = what, total, log, batches, unit
        self.every_s = every_s_default() if every_s is None else every_s
        self.final, self.clock = final, clock or CLOCK
        self.start = self.last = self.clock()
        self.done = self.batch = 0
        self.lines = 0

    @property
    def finished(self) -> bool:
        return self.total is not None and self.done >= self.total

    def update(self, n: int, detail: str | Callable[[], str] = "") -> bool:
        """Count n more items (one batch); log a line if due. `detail` may be a callable, evaluated only then.
        Returns whether a line was logged."""
        self.done += n
        self.batch += 1
        now = self.clock()
        if not (now - self.last >= self.every_s or (self.final and self.finished)):
            return False
        self.last = now
        text = detail() if callable(detail) else detail
        self.log(self.line(now) + (f"; {text}" if text else ""))
        self.lines += 1
        return True

    def line(self, now: float | None = None) -> str:
        now = self.clock() if now is None else now
        elapsed = now - self.start
        rate = self.done / elapsed if elapsed > 0 else float("nan")
        parts = []
        if self.batches:
            parts.append(f"batch {self.batch}/{self.batches}")
        if self.total:
            parts.append(f"{self.done}/{self.total} {self.unit} ({100 * self.done / self.total:.1f}%)")
        else:
            parts.append(f"{self.done} {self.unit}")
        parts.append(f"{rate:.1f} {self.unit}/s" if math.isfinite(rate) else f"? {self.unit}/s")
        parts.append(f"elapsed {duration(elapsed)}")
        if self.total:
            left = (self.total - self.done) / rate if rate > 0 else float("nan")
            parts.append(f"ETA {duration(left)}")
        return f"{self.what}: " + ", ".join(parts)


def epoch_progress(what: str, n_images: int, batch_size: int, log: Callable[[str], None]) -> Progress:
    """Throttled progress inside one epoch (batch i/n, images/s, ETA of the epoch); the epoch's own summary line
    is its last word, so no final progress line."""
    return Progress(what, n_images, log, batches=math.ceil(n_images / batch_size), final=False)


def training_eta(epoch_seconds: list[float], epochs_left: int) -> str:
    """', ETA of the training h:mm:ss' from the mean epoch time of this job ('' after the last epoch)."""
    if epochs_left <= 0 or not epoch_seconds:
        return ""
    return f", ETA of the training {duration(epochs_left * sum(epoch_seconds) / len(epoch_seconds))}"
