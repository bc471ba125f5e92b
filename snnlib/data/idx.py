"""The IDX format of MNIST and Fashion-MNIST (big-endian header, then raw unsigned bytes), gzipped or not."""
from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from .errors import DataVerificationError
from .source import Splits

_UBYTE = 0x08
_GZIP_MAGIC = b"\x1f\x8b"

# split -> (images stem, labels stem); files are <stem>-ubyte or <stem>-ubyte.gz (some mirrors use '.' for '-')
IDX_STEMS = {
    "train": ("train-images-idx3", "train-labels-idx1"),
    "test": ("t10k-images-idx3", "t10k-labels-idx1"),
}


def decode_idx(raw: bytes, source: str = "<bytes>") -> np.ndarray:
    """Decode an uncompressed IDX byte string of unsigned bytes into an array of the stored shape."""
    if len(raw) < 4:
        raise DataVerificationError(f"{source} is not an IDX file (only {len(raw)} bytes)")
    zero, dtype, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype != _UBYTE or not 1 <= ndim <= 4:
        raise DataVerificationError(
            f"{source} is not an unsigned-byte IDX file (header {raw[:4].hex()}); delete it and fetch it again"
        )
    header_len = 4 + 4 * ndim
    shape = struct.unpack(">" + "I" * ndim, raw[4:header_len])
    expected = int(np.prod(shape))
    if len(raw) - header_len != expected:
        raise DataVerificationError(
            f"{source} is truncated or padded: header says shape {shape} ({expected} bytes), "
            f"file holds {len(raw) - header_len}; delete it and fetch it again"
        )
    return np.frombuffer(raw, np.uint8, offset=header_len).reshape(shape)


def read_idx_file(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file; gzip is detected from the magic bytes, not the file name."""
    path = Path(path)
    data = path.read_bytes()
    if data[:2] == _GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as err:
            raise DataVerificationError(f"{path} is a corrupt gzip file ({err}); delete it and fetch it again") from err
    return decode_idx(data, source=str(path))


def find_idx_file(folder: Path, stem: str) -> Path | None:
    for sep in ("-", "."):
        for suffix in (".gz", ""):
            candidate = folder / f"{stem}{sep}ubyte{suffix}"
            if candidate.is_file():
                return candidate
    return None


def has_idx_splits(folder: Path) -> bool:
    return all(find_idx_file(folder, stem) is not None for stems in IDX_STEMS.values() for stem in stems)


def read_idx_splits(folder: Path) -> Splits:
    """The 4-file MNIST layout -> {split: (x uint8 [N, 1, 28, 28], y int64 [N])}."""
    splits: Splits = {}
    for split, (images_stem, labels_stem) in IDX_STEMS.items():
        images_path, labels_path = find_idx_file(folder, images_stem), find_idx_file(folder, labels_stem)
        if images_path is None or labels_path is None:
            raise FileNotFoundError(f"{folder} lacks {images_stem}-ubyte[.gz] or {labels_stem}-ubyte[.gz]")
        images, labels = read_idx_file(images_path), read_idx_file(labels_path)
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise DataVerificationError(
                f"{images_path} / {labels_path}: shapes {images.shape} and {labels.shape} do not pair up; "
                "delete them and fetch them again"
            )
        splits[split] = (images[:, None, :, :], labels.astype(np.int64))
    return splits
