"""Where data lives: `<data_root>/raw/` holds what was fetched, `<data_root>/cache/` the decoded, verified `.npz`."""
from __future__ import annotations

import os
from pathlib import Path

DATA_ROOT_ENV = "SNNLIB_DATA"
_REPO_ROOT = Path(__file__).resolve().parents[2]


def default_data_root() -> Path:
    """`$SNNLIB_DATA` if set, else `<repo>/data`."""
    env = os.environ.get(DATA_ROOT_ENV)
    return Path(env) if env else _REPO_ROOT / "data"


def resolve_data_root(data_root: str | os.PathLike | None) -> Path:
    return Path(data_root) if data_root is not None else default_data_root()


def raw_dir(data_root: str | os.PathLike | None = None) -> Path:
    return resolve_data_root(data_root) / "raw"


def cache_dir(data_root: str | os.PathLike | None = None) -> Path:
    return resolve_data_root(data_root) / "cache"


def cache_path(name: str, data_root: str | os.PathLike | None = None) -> Path:
    return cache_dir(data_root) / f"{name}.npz"
