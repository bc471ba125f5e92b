"""The decoded-once cache: `<cache_dir>/<name>.npz` with `train_x`, `train_y`, `test_x`, `test_y`
(x uint8 [N, C, H, W], y int64 [N]), re-verified on every read so a damaged file never trains a model."""
from __future__ import annotations

import os
import zipfile
import zlib
from pathlib import Path

import numpy as np

from .errors import DataVerificationError
from .registry import DatasetInfo
from .source import Splits
from .verify import verify_split


def write_cache(path: Path, splits: Splits) -> None:
    """Write atomically, so an interrupted run never leaves a half-written cache behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {f"{split}_{part}": a for split, (x, y) in splits.items() for part, a in (("x", x), ("y", y))}
    tmp = path.with_name(f"{path.name}.{os.getpid()}.partial")  # per process: parallel jobs may prepare at once
    try:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_cache(path: Path, info: DatasetInfo, split: str) -> tuple[np.ndarray, np.ndarray]:
    remedy = f"Delete {path} and run `python -m snnlib.data prepare --root {path.parent.parent}` to rebuild it."
    try:
        with np.load(path, allow_pickle=False) as npz:
            x, y = npz[f"{split}_x"], npz[f"{split}_y"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        raise DataVerificationError(f"{path}: unreadable cache file ({err}). {remedy}") from err
    verify_split(info, split, x, y, where=str(path), remedy=remedy)
    return x, y
