"""What every raw-data reader provides, so `prepare` can treat all datasets alike."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np

# split name -> (x uint8 [N, C, H, W], y int64 [N])
Splits = dict[str, tuple[np.ndarray, np.ndarray]]


class RawSource(NamedTuple):
    # (raw_dir, download) -> the file or folder to decode; raises DatasetNotFoundError saying how to get it
    locate: Callable[[Path, bool], Path]
    decode: Callable[[Path], Splits]
    # raw_dir -> one sentence on how to (re)fetch the raw files, used in error messages
    how_to_get: Callable[[Path], str]
