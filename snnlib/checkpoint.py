"""Checkpoints: written atomically and exclusively (snnlib.atomic), read with weights_only=True, checked before use.

A file that cannot be read, that holds pickled code instead of weights, or that belongs to another run raises
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


# What the weights-only unpickler says when the file asks it to import or call something (a GLOBAL outside its
# allowlist or from a blocked module, a REDUCE/NEWOBJ/BUILD of such an object). Anything else it refuses (an
# unknown opcode, a bad persistent id) is damage, not code.
_CODE_REFUSALS = re.compile(r"Unsupported global|GLOBAL \S+ whose module \S+ is blocked|call reduce for "
                            r"unrecognized function|Can only create new object|Can only build")


def _refused_code(e: Exception) -> bool:
    text = str(e)
    return isinstance(e, pickle.UnpicklingError) and "Weights only load failed" in text \
        and _CODE_REFUSALS.search(text) is not None


def _one_line(e: Exception, limit: int = 400) -> str:
    """An exception's text on one line (load_state_dict lists its missing keys over several)."""
    text = " ".join(str(e).split())
    return text if len(text) <= limit else text[:limit] + " ..."


def _unreadable_because(e: Exception) -> str:
    """One line on why torch.load failed; torch's own message advises weights_only=False, which is never the fix
    for a file snnlib did not write."""
    text = str(e)
    if isinstance(e, pickle.UnpicklingError):
        detail = "unpickling failed"
    else:
        first = next((line.strip() for line in text.splitlines() if line.strip()), "")
        detail = f"{type(e).__name__}: {first.split('. ')[0][:160]}"
    return f"it is damaged, truncated or not a torch file ({detail})"


def safe_load(path: Path, kind: str) -> dict:
    path = Path(path)
    fix = ("Move it away to train from epoch 0, or restore it from a backup" if kind == "training"
           else f"Remake it with `snakemake --forcerun {path}` (and your usual options), or restore it from a "
                "backup")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as e:  # truncated, corrupt, or pickles arbitrary objects
        if _refused_code(e):  # nothing in it ran: the weights-only unpickler stops at the first import
            raise CheckpointError(f"{path}: refused: contains code, not weights (a file from an untrusted source?); "
                                  "delete it and rerun the job that makes it; it has been left as it is.") from None
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


POSITION_KEYS = ("batch", "epoch_generator", "total", "correct", "loss_sum", "seconds")


def save_training_state(path: Path, model: nn.Module, opt, sched, gen: torch.Generator, epoch: int,
                        history: list, fingerprint: str | None = None, position: dict | None = None) -> None:
    """`epoch` epochs finished; saved mid-epoch, `position` says where the next one is (snnlib/preemption.py)."""
    state = {"format": FORMAT, "kind": "training", "epoch": epoch, "model": model.state_dict(),
             "optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "generator": gen.get_state(),
             "torch_rng": torch.get_rng_state(), "history": history, "fingerprint": fingerprint,
             "context": run_context(model)}
    if torch.cuda.is_available():  # dropout on the GPU draws from the CUDA generators
        state["cuda_rng"] = torch.cuda.get_rng_state_all()
    if position is not None:
        state["position"] = position
    atomic_save(state, path)


def load_training_state(path: Path, model: nn.Module, opt, sched, gen: torch.Generator,
                        fingerprint: str | None = None) -> dict | None:
    """Restore a training checkpoint into the given objects; None if there is none yet.

    With `fingerprint` given, the checkpoint must have been saved with that same fingerprint: one saved with
    another, or with none, is refused. A checkpoint that is unreadable, foreign, from another configuration or
    shaped for another model raises CheckpointError; the caller stops before training, so the file is never
    overwritten."""
    path = Path(path)
    if not path.exists():
        return None
    state = safe_load(path, "training")
    missing = [k for k in TRAINING_KEYS if k not in state]
    if missing:
        raise CheckpointError(f"{path} lacks {', '.join(missing)}: it was written by another snnlib "
                              "version or another tool. Move it away to start afresh.")
    position = state.get("position")
    if position is not None and (not isinstance(position, dict) or any(k not in position for k in POSITION_KEYS)):
        raise CheckpointError(f"{path} holds a mid-epoch position without {', '.join(POSITION_KEYS)}: it was "
                              "written by another snnlib version or another tool. Move it away to start afresh.")
    if fingerprint is not None and state.get("fingerprint") != fingerprint:
        stored = state.get("fingerprint")
        made = ("records no fingerprint (an older snnlib or another tool wrote it)" if stored is None
                else f"was made by a run with fingerprint={stored}")
        raise CheckpointError(f"{path} {made} but this job expects fingerprint={fingerprint} (another "
                              "configuration or seed); move it away (or delete it) to train from epoch 0, "
                              "and rerun.")
    try:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        gen.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
    except (RuntimeError, KeyError, ValueError, TypeError) as e:
        raise CheckpointError(f"{path} does not fit this model/optimizer ({_one_line(e)}); move it away to start "
                              "afresh.") from None
    cuda_rng = state.get("cuda_rng")
    if cuda_rng is not None and torch.cuda.is_available() and len(cuda_rng) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda_rng)
    return state


_IDENTITY_TYPES = (str, int, float, bool, type(None))


def save_model(path: Path, model: nn.Module, identity: dict) -> None:
    """Save `model`'s weights with `identity`, the description of what was made: the experiment, seed, recipe,
    model, L, config ... of the run that produced these weights, e.g. {"experiment": "mnist_lenet", "seed": 0,
    "recipe": training_hash(exp), "model": "lenet", "L": 8, "config": "default"}.

    The identity must describe the weights, never the job that happens to hold them: a stage that loads a
    checkpoint and saves its weights again (or a copy of them) passes the identity it was made for, not its own,
    so no file ever carries an identity its weights do not have. load_model_state(..., expect=) checks it.
    Values are str, int, float, bool or None (they must load under weights_only=True and print in one line)."""
    if not isinstance(identity, dict) or not identity:
        raise TypeError(f"save_model({path}): identity must be a non-empty dict describing the weights")
    bad = {k: type(v).__name__ for k, v in identity.items()
           if not isinstance(k, str) or not isinstance(v, _IDENTITY_TYPES)}
    if bad:
        raise TypeError(f"save_model({path}): identity values must be str/int/float/bool/None; got {bad}")
    atomic_save({"format": FORMAT, "kind": "model", "model": model.state_dict(), "meta": dict(identity)}, path)


def _describe(identity: dict, keys) -> str:
    return " ".join(f"{k}={identity[k]}" if k in identity else f"{k}=<none>" for k in keys)


def check_identity(path: Path, stored: dict | None, expect: dict) -> None:
    """Raise CheckpointError (one line, both sides and the fix) unless every key of `expect` is in `stored` with
    an equal value."""
    stored = stored if isinstance(stored, dict) else {}
    if all(k in stored and stored[k] == v for k, v in expect.items()):
        return
    made = (f"was made for {_describe(stored, expect)}" if any(k in stored for k in expect)
            else "records no identity (an older snnlib or another tool wrote it)")
    raise CheckpointError(f"{path} {made} but this job expects {_describe(expect, expect)}; delete it (or rerun "
                          f"its producing job with `snakemake --forcerun {path}`), then rerun this one.")


def load_model_state(path: Path, model: nn.Module, expect: dict | None = None) -> dict:
    """Load the weights saved by save_model into `model` and return their identity.

    With `expect`, every key of it must be in the stored identity with an equal value, else CheckpointError
    ("<path> was made for experiment=... L=... but this job expects experiment=... L=...; delete it ..."); the
    identity is checked before the weights are touched."""
    state = safe_load(path, "model")
    if expect is not None:
        check_identity(path, state.get("meta"), expect)
    try:
        model.load_state_dict(state["model"])
    except (RuntimeError, KeyError) as e:
        raise CheckpointError(f"{path} does not fit the model the config describes ({_one_line(e)}). "
                              "Was the config changed after training? Retrain or restore the config.") from None
    return state.get("meta") or {}
