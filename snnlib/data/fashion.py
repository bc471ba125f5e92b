"""Fashion-MNIST: the 4 upstream IDX .gz files, as shipped by Debian's dataset-fashion-mnist package."""
from __future__ import annotations

from pathlib import Path

from .download import DownloadError, download_file
from .errors import DatasetNotFoundError
from .idx import IDX_STEMS, has_idx_splits, read_idx_splits
from .source import RawSource, Splits

USER_FOLDER = "fashion-mnist"  # <raw_dir>/fashion-mnist/: files a user put there by hand (or downloaded)
DEB_FOLDER = "fashion-mnist-deb/usr/share/datasets/fashion-mnist"  # the .deb extracted by scripts/fetch_data.sh
SYSTEM_FOLDER = Path("/usr/share/datasets/fashion-mnist")  # `apt-get install dataset-fashion-mnist`
URLS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)


def candidate_folders(raw_dir: Path) -> list[Path]:
    return [raw_dir / USER_FOLDER, raw_dir / DEB_FOLDER, SYSTEM_FOLDER]


def how_to_get(raw_dir: Path) -> str:
    return (
        f"run `make data` (or `scripts/fetch_data.sh {raw_dir}`), which extracts Debian's dataset-fashion-mnist "
        f"into {raw_dir / DEB_FOLDER}; or `apt-get install dataset-fashion-mnist`; or put the 4 IDX .gz files from "
        f"github.com/zalandoresearch/fashion-mnist in {raw_dir / USER_FOLDER}"
    )


def locate_fashion_mnist(raw_dir: Path, download: bool = False) -> Path:
    for folder in candidate_folders(raw_dir):
        if has_idx_splits(folder):
            return folder
    if download:
        folder = raw_dir / USER_FOLDER
        try:
            for stems in IDX_STEMS.values():
                for stem in stems:
                    name = f"{stem}-ubyte.gz"
                    if not (folder / name).is_file():
                        download_file([base + name for base in URLS], folder / name)
        except DownloadError as err:
            raise DatasetNotFoundError(
                f"Fashion-MNIST download failed ({err}); instead {how_to_get(raw_dir)}"
            ) from err
        return folder
    looked = ", ".join(str(f) for f in candidate_folders(raw_dir))
    raise DatasetNotFoundError(
        f"Fashion-MNIST not found (looked in {looked}): {how_to_get(raw_dir)}, or set SNNLIB_DATA"
    )


def decode_fashion_mnist(folder: Path) -> Splits:
    return read_idx_splits(folder)


SOURCE = RawSource(locate=locate_fashion_mnist, decode=decode_fashion_mnist, how_to_get=how_to_get)
