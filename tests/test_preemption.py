"""Mid-epoch checkpoints (snnlib/preemption.py): a training stopped by SIGTERM at any batch, or saved every N seconds
and resumed from any of those saves, ends with the uninterrupted run's weights and history, bit for bit on the CPU.

In-process, on small synthetic data, so every batch boundary can be hit: in-memory batches augmented from the
training generator, and streamed batches (the ImageNet path) whose crops come from per-epoch seeds; the network
has batch norm and dropout, so the global RNG and running statistics are resumed too. The real command line, under
SIGTERM and SIGKILL, is in tests/test_resume.py; through SLURM (time limit, SIGKILL, scancel, requeue) in
tests/test_slurm.py.
"""
from __future__ import annotations

import shutil
import signal

import pytest
import torch
from torch import nn

from snnlib import checkpoint, preemption
from snnlib.checkpoint import CheckpointError
from snnlib.data import StreamedBatches, TensorBatches
from snnlib.training import TrainSettings, train
from test_streaming import NumberedFiles

EPOCHS, BATCH = 3, 8
N = 44  # 6 batches per epoch, the last one short


def settings(every_s=None) -> TrainSettings:
    return TrainSettings(epochs=EPOCHS, batch_size=BATCH, lr=0.05, checkpoint_every_s=every_s)


def in_memory():
    g = torch.Generator().manual_seed(123)
    x = torch.randint(0, 256, (N, 1, 4, 4), dtype=torch.uint8, generator=g)
    y = torch.randint(0, 3, (N,), generator=g)

    def augment(images, gen):  # draws from the training generator, as crop/flip/cutout do
        flip = torch.rand(len(images), generator=gen) < 0.5
        xb = images.float() / 255
        return torch.where(flip[:, None, None, None], xb.flip(-1), xb).flatten(1)

    return TensorBatches(x, y), (lambda xb: xb.float().flatten(1) / 255), augment, 16


def streamed():
    """Each 'image' is [file index, its crop draw]: the draw comes from (epoch seed, file), not from the loop."""
    return (StreamedBatches(NumberedFiles(N)), (lambda xb: torch.stack([xb[:, 0] / N, xb[:, 1] / 2**31], 1).float()),
            None, 2)


DATA = {"in_memory": in_memory, "streamed": streamed}


def network(inputs: int) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(inputs, 12), nn.BatchNorm1d(12), nn.ReLU(), nn.Dropout(0.25), nn.Linear(12, 3))


def run(kind: str, ckpt, every_s=None, on_batch=None, log=None):
    """Train from (or resume at) `ckpt`; `on_batch(k)` is called inside the k-th batch trained by this call."""
    data, to_input, augment, inputs = DATA[kind]()
    model = network(inputs)
    calls = [0]

    def hooked(images, gen):
        calls[0] += 1
        if on_batch is not None:
            on_batch(calls[0])
        return to_input(images) if augment is None else augment(images, gen)

    hist = train(model, data, None, to_input, settings(every_s), seed=7, ckpt_path=ckpt, augment=hooked,
                 log=(log.append if log is not None else (lambda m: None)), fingerprint="test")
    return model, hist["history"]


def same(a, b) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert [k for k in sa if not torch.equal(sa[k], sb[k])] == []


def strip(history):
    return [{k: v for k, v in row.items() if k not in ("seconds", "job")} for row in history]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run of each kind of data, saving at epoch ends only."""
    out = {}
    for kind in DATA:
        out[kind] = run(kind, tmp_path_factory.mktemp(kind) / "train_state.pt")
    return out


def sigterm_at(k: int):
    def on_batch(i):
        if i == k:
            signal.raise_signal(signal.SIGTERM)  # arrives in the middle of batch k, as from SLURM
    return on_batch


@pytest.mark.parametrize("kind", list(DATA))
@pytest.mark.parametrize("at", [1, 4, 6, 9, 17])  # 6 = an epoch's last batch, 17 = the third epoch
def test_sigterm_saves_at_the_next_batch_and_the_resumed_run_is_bit_identical(reference, tmp_path, kind, at):
    ckpt = tmp_path / "train_state.pt"
    with preemption.stop_on_signals():
        with pytest.raises(preemption.Stopped) as stopped:
            run(kind, ckpt, on_batch=sigterm_at(at))
    state = torch.load(ckpt, weights_only=True)
    epoch, batch = divmod(at, 6)
    assert state["epoch"] == epoch
    if batch:  # saved at the boundary after batch `at`, mid-epoch
        assert state["position"]["batch"] == batch
        assert f"SIGTERM: training stopped in epoch {epoch + 1} after batch {batch}/6" in str(stopped.value)
    else:  # the epoch's last batch: the epoch-end checkpoint is the one saved
        assert "position" not in state
        assert f"SIGTERM: training stopped after epoch {epoch}" in str(stopped.value)
    assert f"checkpoint saved to {ckpt}" in str(stopped.value)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is gone again

    log = []
    model, history = run(kind, ckpt, log=log)
    where = f"in epoch {epoch + 1} after batch {batch}/6" if batch else f"after epoch {epoch}"
    assert log[0] == f"resumed from {ckpt} {where}"
    ref_model, ref_history = reference[kind]
    same(model, ref_model)
    assert strip(history) == strip(ref_history)  # losses and accuracies: the running sums were resumed too


@pytest.mark.parametrize("kind", list(DATA))
def test_checkpoints_on_a_time_budget_change_nothing_and_each_resumes_bit_identical(reference, tmp_path, kind,
                                                                                    monkeypatch):
    """checkpoint_every_s=0 saves after every batch but an epoch's last; saving changes no draw, and a run resumed
    from any one of those checkpoints ends where the uninterrupted one does."""
    ckpt = tmp_path / "train_state.pt"
    kept = []
    real = checkpoint.save_training_state

    def save_and_keep(path, *args, **kwargs):
        real(path, *args, **kwargs)
        kept.append(tmp_path / f"save{len(kept):02d}.pt")
        shutil.copy(path, kept[-1])

    monkeypatch.setattr(checkpoint, "save_training_state", save_and_keep)
    model, history = run(kind, ckpt, every_s=0)
    monkeypatch.undo()
    ref_model, ref_history = reference[kind]
    same(model, ref_model)
    assert strip(history) == strip(ref_history)
    positions = [torch.load(p, weights_only=True).get("position") for p in kept]
    assert [p["batch"] if p else None for p in positions] == [1, 2, 3, 4, 5, None] * EPOCHS
    for pick in (kept[2], kept[8], kept[16]):  # mid-epoch 1, 2 and 3
        shutil.copy(pick, ckpt)
        model, history = run(kind, ckpt, every_s=0)
        same(model, ref_model)
        assert strip(history) == strip(ref_history)


def test_a_resumed_epoch_sees_the_rest_of_the_same_order():
    """shuffled(start=k) draws what shuffled() draws and hands out its batches from k on."""
    x = torch.arange(N, dtype=torch.uint8)[:, None]
    for data in (TensorBatches(x, torch.zeros(N, dtype=torch.int64)), StreamedBatches(NumberedFiles(N))):
        whole = [xb for xb, _ in data.shuffled(BATCH, torch.Generator().manual_seed(5))]
        for k in (0, 1, 5, 6):
            gen = torch.Generator().manual_seed(5)
            tail = [xb for xb, _ in data.shuffled(BATCH, gen, start=k)]
            assert len(tail) == len(whole) - k and all(torch.equal(a, b) for a, b in zip(tail, whole[k:]))
            if k < 6:  # the order was drawn: the generator moved as far as in the whole epoch
                ref = torch.Generator().manual_seed(5)
                list(data.shuffled(BATCH, ref))
                assert torch.equal(gen.get_state(), ref.get_state())


def test_a_mid_epoch_checkpoint_without_its_position_fields_is_refused(tmp_path):
    ckpt = tmp_path / "train_state.pt"
    with preemption.stop_on_signals():
        with pytest.raises(preemption.Stopped):
            run("in_memory", ckpt, on_batch=sigterm_at(2))
    state = torch.load(ckpt, weights_only=True)
    del state["position"]["epoch_generator"]
    torch.save(state, ckpt)
    before = ckpt.read_bytes()
    with pytest.raises(CheckpointError, match="mid-epoch position without"):
        run("in_memory", ckpt)
    assert ckpt.read_bytes() == before


def test_without_the_handler_a_sigterm_is_not_swallowed():
    """Outside stop_on_signals (every stage but training), SIGTERM keeps its usual meaning."""
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    previous = signal.signal(signal.SIGTERM, lambda *a: None)
    try:
        with preemption.stop_on_signals():
            assert signal.getsignal(signal.SIGTERM) is preemption._note
        assert signal.getsignal(signal.SIGTERM) is not preemption._note
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_decoding_workers_outlive_a_sigterm():
    """SLURM signals every process of the job: the DataLoader workers of a streamed epoch must not die of it, or the
    loop would fail before it reaches the batch boundary where it saves."""
    import os
    from pathlib import Path
    from test_resume import descendants
    data = StreamedBatches(NumberedFiles(N), workers=2)
    batches = data.shuffled(4, torch.Generator().manual_seed(0))
    # one batch from each worker first: a worker that has delivered a batch has run its init (which ignores
    # SIGTERM); before that, under load, a signal can still find it starting up
    seen = [next(batches)[0], next(batches)[0]]
    workers = descendants(os.getpid())
    assert len(workers) >= 2, workers
    for pid in workers:
        if Path(f"/proc/{pid}").exists():
            os.kill(pid, signal.SIGTERM)
    seen += [xb for xb, _ in batches]
    assert sorted(torch.cat(seen)[:, 0].tolist()) == list(range(N))
