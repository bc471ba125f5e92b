"""Per-image outcomes, kept so that every statistic (intervals, paired tests) is recomputed at aggregation without
re-simulating.

One compressed .npz per evaluation: `labels` [N] and `indices` [N] (positions in the evaluated test split, the
same for every method and seed of an experiment), and per variant the prediction after every T,
`pred__<variant>` [T_max, N] int16 (variant "" is stored as "main"). An ANN's file holds `pred__<view>` [N].
Predictions change rarely from one T to the next, so the files compress to a few bytes per image and T.
"""
from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .atomic import atomic_write_bytes, unreadable


def _name(key: str) -> str:
    return "pred__" + (key or "main")


@dataclass
class Outcomes:
    labels: np.ndarray
    indices: np.ndarray
    predictions: dict[str, np.ndarray]

    def correct(self, key: str) -> np.ndarray:
        """bool [T_max, N] (or [N] for an ANN view): prediction == label."""
        return self.predictions[key] == self.labels

    def same_images(self, other: "Outcomes") -> bool:
        return np.array_equal(self.indices, other.indices) and np.array_equal(self.labels, other.labels)


def save(path: Path, labels, indices, predictions: dict) -> None:
    """Write atomically (atomic.py: a unique temporary file in the same folder, then a rename)."""
    arrays = {"labels": np.asarray(labels, dtype=np.int16), "indices": np.asarray(indices, dtype=np.int64)}
    for key, pred in predictions.items():
        arrays[_name(key)] = np.asarray(pred, dtype=np.int16)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def load(path: Path) -> Outcomes:
    """The outcomes saved at `path`; a damaged file raises UnreadableError naming it (a missing one: OSError)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            preds = {k[len("pred__"):]: z[k] for k in z.files if k.startswith("pred__")}
            if "main" in preds:
                preds[""] = preds.pop("main")
            return Outcomes(z["labels"], z["indices"], preds)
    except FileNotFoundError:
        raise
    except (ValueError, KeyError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise unreadable(path, "outcomes file", e) from None
