"""What training and conversion code calls: whole splits as uint8 tensors, balanced subsets, float conversion."""
from __future__ import annotations

import os

import numpy as np
import torch

from .cache import read_cache
from .paths import cache_dir, cache_path, raw_dir
from .prepare import prepare
from .proxy import DERIVED_TRANSFORMS
from .registry import SPLITS, DatasetInfo, get_info


def load_split(
    name: str, split: str, data_root: str | os.PathLike | None = None, *, download: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """(x uint8 [N, C, H, W], y int64 [N]) of an in-memory dataset; split is 'train' or 'test'.

    Reads `<data_root>/cache/<name>.npz`, preparing it from `<data_root>/raw/` on first use.
    data_root defaults to $SNNLIB_DATA, else `<repo>/data`.
    """
    info = get_info(name)
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
    if not info.in_memory:
        raise ValueError(f"{name} is too large to load into memory; use snnlib.data.imagenet_dataset(split)")
    if info.derived_from is not None:
        x, y = load_split(info.derived_from, split, data_root, download=download)
        return DERIVED_TRANSFORMS[name](x), y
    path = cache_path(name, data_root)
    if not path.is_file():
        prepare(name, raw_dir(data_root), cache_dir(data_root), download=download)
    x, y = read_cache(path, info, split)
    return torch.from_numpy(x), torch.from_numpy(y)


def balanced_subset(y: torch.Tensor | np.ndarray, n_per_class: int, seed: int) -> torch.Tensor:
    """Sorted int64 indices of `n_per_class` examples of every class in `y`, drawn without replacement.

    Deterministic in `seed` (its own generator; global RNG state untouched). Used for calibration sets and
    small evaluation subsets, where an unbalanced draw would bias per-layer activation statistics.
    """
    y = torch.as_tensor(y).reshape(-1)
    if n_per_class < 0:
        raise ValueError(f"n_per_class must be >= 0, got {n_per_class}")
    generator = torch.Generator().manual_seed(seed)
    chosen = []
    for label in torch.unique(y).tolist():
        members = torch.nonzero(y == label).flatten().cpu()
        if len(members) < n_per_class:
            raise ValueError(f"class {label} has only {len(members)} examples, {n_per_class} requested")
        chosen.append(members[torch.randperm(len(members), generator=generator)[:n_per_class]])
    if not chosen:
        return torch.empty(0, dtype=torch.int64)
    return torch.sort(torch.cat(chosen)).values


def to_float(x: torch.Tensor, info: DatasetInfo | str, normalize: bool) -> torch.Tensor:
    """uint8 [N, C, H, W] -> float32: pixel/255 in [0, 1], or ((pixel/255) - mean) / std per channel."""
    if isinstance(info, str):
        info = get_info(info)
    if x.dtype != torch.uint8:
        raise TypeError(f"expected uint8 images, got {x.dtype}")
    out = x.to(torch.float32) / 255.0
    if normalize:
        if out.shape[-3] != info.in_channels:
            raise ValueError(f"{info.name} has {info.in_channels} channels, images have {out.shape[-3]}")
        mean = torch.tensor(info.mean, dtype=torch.float32, device=x.device).view(-1, 1, 1)
        std = torch.tensor(info.std, dtype=torch.float32, device=x.device).view(-1, 1, 1)
        out = (out - mean) / std
    return out
