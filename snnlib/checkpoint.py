"""Checkpoints: written atomically and exclusively (snnlib.atomic), read with weights_only=True, checked before use.

A file that cannot be read, that or that belongs to another run raises
CheckpointError naming the file and the fix; it is never silently overwritten, so no finished work is lost.
"""
from __future__ import annotations

import io
import pickle
import re
from pathlib import Path

import torch
from torch import nn

from .atomic import WriteError, atomic_write_bytes, disk_full_error, is_disk_full

FORMAT = "snnlib-checkpoint-v1"


class CheckpointError(RuntimeError):
    pass


def atomic_save(obj, path: Path) -> None:
    """torch.save `obj` to `path`: serialized in memory first, then written by snnlib.atomic.atomic_write_bytes.

    A kill at any instant leaves either the previous file or the new one, never a torn file, and no temporary file
    unless the kill is a SIGKILL (the next save removes that one). A second process saving to the same path while
    this one does gets CheckpointError ("another process is writing ..."); a full disk gets CheckpointError("no
    space left writing <path>; free N MB and rerun"), N the size of the serialized checkpoint."""
    path = Path(path)
    buf = io.BytesIO()
    try:
        torch.save(obj, buf)
    except RuntimeError as e:
        if is_disk_full(e):
            raise CheckpointError(str(disk_full_error(path, buf.tell()))) from None
        raise
    try:
        atomic_write_bytes(path, buf.getbuffer())
    except WriteError as e:
        raise CheckpointError(str(e)) from None


def _unreadable_because(e: Exception) -> str:
    """One line on why torch.load failed; torch's own message advises weights_only=False, which is never the fix
    for a file snnlib did not write."""
    text = str(e)
    foreign = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
    if foreign:
        return (f"it pickles Python objects ({foreign.group(1)}), which snnlib never writes, and loading with "
                "weights_only=True refuses them")
    if isinstance(e, pickle.UnpicklingError):
        detail = "unpickling failed"
    else:
        first = next((line.strip() for line in text.splitlines() if line.strip()), "")
        detail = f"{type(e).__name__}: {first.split('. ')[0][:160]}"
    return f"it is damaged, truncated or not a torch file ({detail})"


def safe_load(path: Path, kind: str) -> dict:
    path = Path(path)
    fix = ("Move it away to train from epoch 0, or restore it from a backup" if kind == "training"
           else "Delete it and rerun the job that writes it, or restore it from a backup")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as e:  # truncated, corrupt, or pickles arbitrary objects
        raise CheckpointError(f"{path} is not a readable {kind} checkpoint: {_unreadable_because(e)}. "
                              f"{fix}; it has been left as it is.") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT or obj.get("kind") != kind:
        raise CheckpointError(f"{path} is not an snnlib {kind} checkpoint (format/kind mismatch); "
                              f"it may come from another tool or another stage. {fix}; it has been left as it is.")
    return obj


TRAINING_KEYS = ("epoch", "model", "optimizer", "scheduler", "generator", "torch_rng", "history")


def run_context(model: nn.Module) -> dict:
    """What else decides the floating-point result of an epoch: the same state resumed on another device, thread
    count or torch version trains on, but no longer bit for bit like the uninterrupted run."""
    param = next(model.parameters(), None)
    return {"device": str(param.device) if param is not None else "cpu", "threads": torch.get_num_threads(),
            "torch": str(torch.__version__)}


def save_training_state(path: Path, model: nn.Module, opt, sched, gen: torch.Generator, epoch: int,
                        history: list, fingerprint: str | None = None) -> None:
    state = {"format": FORMAT, "kind": "training", "epoch": epoch, "model": model.state_dict(),
             "optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "generator": gen.get_state(),
             "torch_rng": torch.get_rng_state(), "history": history, "fingerprint": fingerprint,
             "context": run_context(model)}
    if torch.cuda.is_available():  # dropout on the GPU draws from the CUDA generators
        state["cuda_rng"] = torch.cuda.get_rng_state_all()
    atomic_save(state, path)


def load_training_state(path: Path, model: nn.Module, opt, sched, gen: torch.Generator,
                        fingerprint: str | None = None) -> dict | None:
    """Restore a training checkpoint into the given objects; None if there is none yet.

    A checkpoint that is unreadable, foreign, from another configuration or shaped for another model raises
    CheckpointError; the caller stops before training, so the file is never overwritten."""
    path = Path(path)
    if not path.exists():
        return None
    state = safe_load(path, "training")
    missing = [k for k in TRAINING_KEYS if k not in state]
    if missing:
        raise CheckpointError(f"{path} lacks {', '.join(missing)}: it was written by another snnlib "
                              "version or another tool. Move it away to start afresh.")
    if fingerprint is not None and state.get("fingerprint") not in (None, fingerprint):
        raise CheckpointError(f"{path} was written by a run with another configuration or seed "
                              f"({state.get('fingerprint')} != {fingerprint}); move it away to start afresh.")
    try:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        gen.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
    except (RuntimeError, KeyError, ValueError, TypeError) as e:
        raise CheckpointError(f"{path} does not fit this model/optimizer ({e}); move it away to start afresh.") \
            from None
    cuda_rng = state.get("cuda_rng")
    if cuda_rng is not None and torch.cuda.is_available() and len(cuda_rng) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda_rng)
    return state


def save_model(path: Path, model: nn.Module, meta: dict) -> None:
    atomic_save({"format": FORMAT, "kind": "model", "model": model.state_dict(), "meta": meta}, path)


def load_model_state(path: Path, model: nn.Module) -> dict:
    state = safe_load(path, "model")
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as e:
        raise CheckpointError(f"{path} does not fit the model the config describes ({e}). "
                              "Was the config changed after training? Retrain or restore the config.") from None
    return state["meta"]
