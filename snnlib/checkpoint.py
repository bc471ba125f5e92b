"""Checkpoints: written atomically (temp file + rename), read with weights_only=True, checked before use.

A file that cannot be read, or that belongs to another run, raises CheckpointError naming the file and the fix; it
is never silently overwritten, so no finished work is lost.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

FORMAT = "snnlib-checkpoint-v1"


class CheckpointError(RuntimeError):
    pass


def atomic_save(obj, path: Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def safe_load(path: Path, kind: str) -> dict:
    path = Path(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as e:  # truncated, corrupt, or pickles arbitrary objects
        raise CheckpointError(f"{path} is not a readable {kind} checkpoint ({type(e).__name__}: {e}). "
                              f"Delete it to recompute it (rerun the job), or restore it from a backup.") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT or obj.get("kind") != kind:
        raise CheckpointError(f"{path} is not an snnlib {kind} checkpoint (format/kind mismatch); "
                              "it may come from another tool or another stage. Move it away and rerun.")
    return obj


def save_training_state(path: Path, model: nn.Module, opt, sched, gen: torch.Generator, epoch: int,
                        history: list, fingerprint: str | None = None) -> None:
    atomic_save({"format": FORMAT, "kind": "training", "epoch": epoch, "model": model.state_dict(),
                 "optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "generator": gen.get_state(),
                 "torch_rng": torch.get_rng_state(), "history": history, "fingerprint": fingerprint}, path)


def load_training_state(path: Path, model: nn.Module, opt, sched, gen: torch.Generator,
                        fingerprint: str | None = None) -> dict | None:
    """Restore a training checkpoint into the given objects; None if there is none yet."""
    path = Path(path)
    if not path.exists():
        return None
    state = safe_load(path, "training")
    if fingerprint is not None and state.get("fingerprint") not in (None, fingerprint):
        raise CheckpointError(f"{path} was written by a run with another configuration "
                              f"({state.get('fingerprint')} != {fingerprint}); move it away to start afresh.")
    try:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
    except (RuntimeError, KeyError, ValueError) as e:
        raise CheckpointError(f"{path} does not fit this model/optimizer ({e}); move it away to start afresh.") \
            from None
    gen.set_state(state["generator"])
    torch.set_rng_state(state["torch_rng"])
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
