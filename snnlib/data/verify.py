"""Checks that decoded arrays are the official dataset: sizes, shapes, label counts and array checksums.

Checksums are md5 of `x.tobytes()` (C-order uint8 [N, 28, 28], same bytes as [N, 1, 28, 28]) and of
`y.astype(uint8).tobytes()`, whose published values docs/data.md, §2-§3 lists.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import numpy as np

from .errors import DataVerificationError
from .registry import DatasetInfo


@dataclass(frozen=True)
class SplitFacts:
    label_counts: tuple[int, ...]
    x_md5: str | None = None  # None where no checksum is known (CIFAR: never obtainable here)
    y_md5: str | None = None


EXPECTED: dict[tuple[str, str], SplitFacts] = {
    ("mnist", "train"): SplitFacts(
        label_counts=(5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949),
        x_md5="6510e85a72c3e9475c492d559d3770d2", y_md5="e86ee40d66677c011a9abda399ec8c4d",
    ),
    ("mnist", "test"): SplitFacts(
        label_counts=(980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009),
        x_md5="240610fa99e73bfa49df8e7fc24d3206", y_md5="073c3904dfbd3e141ff8aa01cfde6b15",
    ),
    ("fashion_mnist", "train"): SplitFacts(
        label_counts=(6000,) * 10,
        x_md5="f209073e486d5113ebe2cc431d4df862", y_md5="3236f6424fc25388b2834cb19942cf7e",
    ),
    ("fashion_mnist", "test"): SplitFacts(
        label_counts=(1000,) * 10,
        x_md5="b7656a891b218fc13e45205c48a92cae", y_md5="8dea97a4e78c1bd1b5a6e8efbb870b6e",
    ),
    ("cifar10", "train"): SplitFacts(label_counts=(5000,) * 10),
    ("cifar10", "test"): SplitFacts(label_counts=(1000,) * 10),
    ("cifar100", "train"): SplitFacts(label_counts=(500,) * 100),
    ("cifar100", "test"): SplitFacts(label_counts=(100,) * 100),
}


def array_md5(a: np.ndarray) -> str:
    return hashlib.md5(np.ascontiguousarray(a).tobytes()).hexdigest()


FIXTURE_ENV = "SNNLIB_FIXTURE_DATA"


def fixture_mode() -> bool:
    """Plumbing runs on small fixture files in the official formats (`SNNLIB_FIXTURE_DATA=1`): only the structure
    is checked, and every report of such a run is marked so that it never becomes a result row."""
    return os.environ.get(FIXTURE_ENV, "") not in ("", "0")


def find_problems(info: DatasetInfo, split: str, x: np.ndarray, y: np.ndarray) -> list[str]:
    """Everything wrong with (x, y) as the `split` of `info`; empty when it is the official data."""
    n = info.split_size(split) if not fixture_mode() else len(x)
    shape = (n, *info.image_shape)
    if x.dtype != np.uint8 or x.shape != shape:
        return [f"images are {x.dtype} {tuple(x.shape)}, expected uint8 {shape}"]
    if y.dtype != np.int64 or y.shape != (n,):
        return [f"labels are {y.dtype} {tuple(y.shape)}, expected int64 ({n},)"]
    if y.min() < 0 or y.max() >= info.num_classes:
        return [f"labels span {y.min()}..{y.max()}, expected 0..{info.num_classes - 1}"]
    facts = EXPECTED.get((info.name, split))
    if facts is None or fixture_mode():
        return []
    problems = []
    counts = tuple(np.bincount(y, minlength=info.num_classes).tolist())
    if counts != facts.label_counts:
        wrong = [c for c in range(info.num_classes) if counts[c] != facts.label_counts[c]]
        problems.append(
            f"label counts differ for classes {wrong[:10]} "
            f"(got {[counts[c] for c in wrong[:10]]}, expected {[facts.label_counts[c] for c in wrong[:10]]})"
        )
    if facts.x_md5 is not None and array_md5(x) != facts.x_md5:
        problems.append(f"image md5 {array_md5(x)} != {facts.x_md5}")
    if facts.y_md5 is not None and array_md5(y.astype(np.uint8)) != facts.y_md5:
        problems.append(f"label md5 {array_md5(y.astype(np.uint8))} != {facts.y_md5}")
    return problems


def verify_split(info: DatasetInfo, split: str, x: np.ndarray, y: np.ndarray, *, where: str, remedy: str) -> None:
    """Raise DataVerificationError naming `where` (the file) and `remedy` (what to do) unless the data is official."""
    problems = find_problems(info, split, x, y)
    if problems:
        raise DataVerificationError(
            f"{where}: the {split} split of {info.name} failed verification ({'; '.join(problems)}). {remedy}"
        )
