"""Logs: timestamped lines from the `snnlib` loggers, throttled progress (checked on a fake clock), and training
that logs the same weights it would have trained silently."""
import io
import logging
import re

import pytest
import torch
from torch import nn

from snnlib import progress
from snnlib.methods.qcfs.activation import QCFS
from snnlib.progress import Progress, configure, duration
from snnlib.training import TrainSettings, train

STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"


class FakeClock:
    """Advances `step` seconds every time it is read."""

    def __init__(self, step: float):
        self.now, self.step = 1000.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


@pytest.fixture
def captured():
    """The `snnlib` loggers configured as `python -m snnlib` does, into a buffer; restored afterwards."""
    logger = logging.getLogger("snnlib")
    level, handlers = logger.level, list(logger.handlers)
    buf = io.StringIO()
    configure(stream=buf)
    yield buf
    for h in list(logger.handlers):
        logger.removeHandler(h)
    for h in handlers:
        logger.addHandler(h)
    logger.setLevel(level)


def test_configured_lines_carry_a_utc_timestamp_level_and_logger(captured):
    logging.getLogger("snnlib.stages").info("hello")
    configure(stream=captured)  # a second configure replaces the handler: no doubled lines
    logging.getLogger("snnlib.training").info("again")
    lines = captured.getvalue().splitlines()
    assert len(lines) == 2, lines
    assert re.fullmatch(STAMP + r" INFO snnlib\.stages: hello", lines[0]), lines[0]
    assert re.fullmatch(STAMP + r" INFO snnlib\.training: again", lines[1]), lines[1]


def test_the_command_line_timestamps_the_stage_loggers_on_stderr(captured, capsys):
    from snnlib.cli import main
    assert main(["methods"]) == 0  # every command configures the loggers before it runs
    logging.getLogger("snnlib.stages").info("a stage line")
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and re.fullmatch(STAMP + r" INFO snnlib\.stages: a stage line", err[0]), err


def test_progress_is_throttled_and_reports_rate_and_eta():
    lines = []
    # 100 batches of 10 images, 1 s per batch (the clock is read once at the start and once per update)
    p = Progress("sweep", 1000, lines.append, batches=100, every_s=10, clock=FakeClock(1.0))
    logged = [p.update(10, lambda: "acc 0.5") for _ in range(100)]
    assert sum(logged) == len(lines) == 10  # every 10 s, the last one at the end
    assert lines[0] == "sweep: batch 10/100, 100/1000 images (10.0%), 10.0 images/s, elapsed 0:00:10, " \
                       "ETA 0:01:30; acc 0.5"
    assert lines[-1].startswith("sweep: batch 100/100, 1000/1000 images (100.0%), 10.0 images/s, elapsed 0:01:40, "
                                "ETA 0:00:00")


def test_progress_final_line_and_detail_evaluated_only_when_logged():
    calls, lines = [], []

    def detail():
        calls.append(1)
        return "d"
    p = Progress("epoch 1/2", 30, lines.append, batches=3, every_s=60, clock=FakeClock(1.0), final=False)
    for _ in range(3):
        p.update(10, detail)
    assert lines == [] and calls == []  # quicker than the throttle, no final line asked: silent
    p = Progress("eval", 30, lines.append, every_s=60, clock=FakeClock(1.0))
    for _ in range(3):
        p.update(10, detail)
    assert len(lines) == 1 and lines[0].startswith("eval: 30/30 images (100.0%)") and calls == [1]


def test_progress_interval_from_the_environment(monkeypatch):
    monkeypatch.setenv("SNNLIB_PROGRESS_S", "2.5")
    assert Progress("x", 1, print).every_s == 2.5
    monkeypatch.setenv("SNNLIB_PROGRESS_S", "0")
    with pytest.raises(ValueError, match="SNNLIB_PROGRESS_S"):
        Progress("x", 1, print)
    assert duration(3725.4) == "1:02:05" and duration(float("nan")) == "?"


def _tiny_training(tmp_path, name, log):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), QCFS(4, 1.0), nn.Linear(8, 3))
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, 256, (64, 1, 4, 4), dtype=torch.uint8, generator=g)
    y = torch.randint(0, 3, (64,), generator=g)
    s = TrainSettings(epochs=3, batch_size=16, lr=0.05)
    hist = train(net, x, y, lambda xb: xb.float() / 255, s, seed=0, ckpt_path=tmp_path / f"{name}.pt", log=log)
    return net, hist


def test_training_logs_progress_inside_epochs_without_changing_the_weights(tmp_path, monkeypatch, captured):
    quiet, _ = _tiny_training(tmp_path, "quiet", lambda _: None)
    monkeypatch.setattr(progress, "CLOCK", FakeClock(20.0))  # every batch "takes" 20 s: a line per batch
    logged, hist = _tiny_training(tmp_path, "logged", None)  # None: the module's logger, configured above
    a, b = quiet.state_dict(), logged.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    lines = captured.getvalue().splitlines()
    assert all(re.match(STAMP + r" INFO snnlib\.training: ", line) for line in lines), lines
    inside = [line for line in lines if ": batch " in line]
    assert len(inside) == 3 * 4  # 3 epochs x 4 batches of 16
    assert "epoch 2/3: batch 3/4, 48/64 images (75.0%), 0.8 images/s, elapsed 0:01:00, ETA 0:00:20; loss " \
           in inside[6]
    ends = [line for line in lines if re.search(r"epoch \d/3 loss", line)]
    assert len(ends) == 3 and "ETA of the training" in ends[0] and "ETA of the training" not in ends[-1]
    assert len(hist["history"]) == 3
