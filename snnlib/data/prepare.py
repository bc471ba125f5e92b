"""Decode a dataset's raw files once, verify them against the official checksums, cache them as `.npz`."""
from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path

from . import cifar, fashion, mnist
from .cache import write_cache
from .errors import DataVerificationError
from .registry import SPLITS, get_info
from .source import RawSource
from .verify import verify_split

RAW_SOURCES: dict[str, RawSource] = {
    "mnist": mnist.SOURCE,
    "fashion_mnist": fashion.SOURCE,
    "cifar10": cifar.CIFAR10_SOURCE,
    "cifar100": cifar.CIFAR100_SOURCE,
}


def prepare(
    name: str,
    raw_dir: str | os.PathLike,
    cache_dir: str | os.PathLike,
    *,
    download: bool = False,
    force: bool = False,
) -> Path:
    """Make `<cache_dir>/<name>.npz` from the raw files under `raw_dir` and return its path.

    Does nothing if the cache exists (unless `force`); a derived dataset (the proxy) prepares its base.
    Raises DatasetNotFoundError (how to get the data) or DataVerificationError (which file is bad).
    """
    info = get_info(name)
    if info.derived_from is not None:
        return prepare(info.derived_from, raw_dir, cache_dir, download=download, force=force)
    if not info.in_memory:
        raise ValueError(f"{name} is streamed from its image folder and has no cache; use snnlib.data.imagenet_dataset")
    raw_dir, cache_dir = Path(raw_dir), Path(cache_dir)
    target = cache_dir / f"{name}.npz"
    if target.is_file() and not force:
        return target

    source = RAW_SOURCES[name]
    location = source.locate(raw_dir, download)
    remedy = (
        f"The raw files are damaged or not the official release: delete {location} and {source.how_to_get(raw_dir)}."
    )
    try:
        splits = source.decode(location)
    except (OSError, EOFError, ValueError, zipfile.BadZipFile, pickle.UnpicklingError) as err:
        if isinstance(err, DataVerificationError):
            raise
        raise DataVerificationError(f"{location}: could not decode {name} ({err}). {remedy}") from err
    for split in SPLITS:
        x, y = splits[split]
        verify_split(info, split, x, y, where=str(location), remedy=remedy)
    write_cache(target, splits)
    return target
