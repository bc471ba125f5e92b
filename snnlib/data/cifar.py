"""CIFAR-10 / CIFAR-100 from the official "python version" pickles, supplied by the user.

No reachable registry ships CIFAR (docs/data.md, §1 and §4), so these readers only run where a user put the
files (or the official .tar.gz) under the raw folder, or where download=True can reach the Toronto server.
Each pickle is a dict with b"data" (uint8 [N, 3072], channel-major 3x32x32 per row) and b"labels"
(CIFAR-10) or b"fine_labels" (CIFAR-100). The pickles are trusted input, as with any official loader.
"""
from __future__ import annotations

import pickle
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .download import DownloadError, download_file
from .errors import DataVerificationError, DatasetNotFoundError
from .source import RawSource, Splits


@dataclass(frozen=True)
class CifarLayout:
    name: str  # registry name
    title: str
    folder: str  # what the official archive unpacks to
    files: dict[str, tuple[str, ...]]  # split -> pickle files, concatenated in this order
    label_key: str
    archive: str
    url: str
    archive_md5: str


CIFAR10 = CifarLayout(
    name="cifar10",
    title="CIFAR-10",
    folder="cifar-10-batches-py",
    files={"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)},
    label_key="labels",
    archive="cifar-10-python.tar.gz",
    url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    archive_md5="c58f30108f718f92721af3b95e74349a",
)
CIFAR100 = CifarLayout(
    name="cifar100",
    title="CIFAR-100",
    folder="cifar-100-python",
    files={"train": ("train",), "test": ("test",)},
    label_key="fine_labels",
    archive="cifar-100-python.tar.gz",
    url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
    archive_md5="eb9058c3a382ffc7106e4002c42a8d85",
)


def read_cifar_pickle(path: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    """One official batch file -> (x uint8 [N, 3, 32, 32], y int64 [N])."""
    try:
        with open(path, "rb") as f:
            # latin1 is what Python-2 pickles of numpy arrays need; keys then come back as str or bytes
            batch = pickle.load(f, encoding="latin1")
        batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
        data, labels = np.asarray(batch["data"]), np.asarray(batch[label_key])
    except (pickle.UnpicklingError, EOFError, KeyError, AttributeError, ValueError) as err:
        raise DataVerificationError(
            f"{path} is not an official CIFAR python pickle with 'data' and '{label_key}' ({err!r}); "
            "replace it with the file from the official archive"
        ) from err
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or labels.shape != (len(data),):
        raise DataVerificationError(
            f"{path}: expected uint8 data [N, 3072] and N labels, got {data.dtype} {data.shape} and {labels.shape}; "
            "replace it with the file from the official archive"
        )
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def read_cifar_folder(layout: CifarLayout, folder: Path) -> Splits:
    splits: Splits = {}
    for split, names in layout.files.items():
        parts = [read_cifar_pickle(folder / name, layout.label_key) for name in names]
        splits[split] = (np.concatenate([x for x, _ in parts]), np.concatenate([y for _, y in parts]))
    return splits


def _has_all_files(layout: CifarLayout, folder: Path) -> bool:
    return all((folder / name).is_file() for names in layout.files.values() for name in names)


def extract_archive(archive: Path, into: Path) -> None:
    try:
        with tarfile.open(archive, "r:gz") as tar:
            if hasattr(tarfile, "data_filter"):
                # refuses absolute paths, links out of the tree and device files
                tar.extractall(into, filter="data")
            else:  # Python < 3.11.4: allow plain files and folders with relative, non-escaping names only
                members = tar.getmembers()
                for member in members:
                    name = Path(member.name)
                    if name.is_absolute() or ".." in name.parts or not (member.isfile() or member.isdir()):
                        raise tarfile.TarError(f"unsafe member {member.name!r}")
                tar.extractall(into, members=members)
    except (tarfile.TarError, OSError, EOFError) as err:
        raise DataVerificationError(
            f"{archive} is not a readable .tar.gz ({err}); delete it and download the official archive again"
        ) from err


def how_to_get(layout: CifarLayout, raw_dir: Path) -> str:
    return (
        f"put the official {layout.folder} folder (or {layout.archive}) under {raw_dir} or set SNNLIB_DATA "
        f"to a data root whose raw/ has it; with internet access, "
        f"`python -m snnlib.data prepare --download --datasets {layout.name}` fetches {layout.url}"
    )


def locate_cifar(layout: CifarLayout, raw_dir: Path, download: bool = False) -> Path:
    folder = raw_dir / layout.folder
    if _has_all_files(layout, folder):
        return folder
    archive = raw_dir / layout.archive
    if not archive.is_file() and download:
        try:
            download_file([layout.url], archive, md5=layout.archive_md5)
        except DownloadError as err:
            raise DatasetNotFoundError(
                f"{layout.title} download failed ({err}); {how_to_get(layout, raw_dir)}"
            ) from err
    if archive.is_file():
        extract_archive(archive, raw_dir)
        if _has_all_files(layout, folder):
            return folder
        raise DataVerificationError(
            f"{archive} did not unpack to {folder} with {sorted(n for ns in layout.files.values() for n in ns)}; "
            "it is not the official archive: delete it and download it again"
        )
    raise DatasetNotFoundError(
        f"{layout.title} not found and cannot be downloaded in this environment (no registry ships it): "
        + how_to_get(layout, raw_dir)
    )


def _source(layout: CifarLayout) -> RawSource:
    return RawSource(
        locate=lambda raw_dir, download=False: locate_cifar(layout, raw_dir, download),
        decode=lambda folder: read_cifar_folder(layout, folder),
        how_to_get=lambda raw_dir: how_to_get(layout, raw_dir),
    )


CIFAR10_SOURCE = _source(CIFAR10)
CIFAR100_SOURCE = _source(CIFAR100)
