"""Datasets for the ANN-to-SNN harness: registry, raw readers, verified cache, loaders and batch augmentation.

Real data here: MNIST and Fashion-MNIST (`make data`, then `python -m snnlib.data prepare --root data`).
CIFAR-10/100 and ImageNet loaders read the official formats from files a user supplies; ImageNet is streamed
(batches.py), the others are held in memory.
"""
from .augment import cutout, random_crop_flip
from .batches import SplitBatches, StreamedBatches, TensorBatches, as_batches, streamed
from .errors import DataVerificationError, DatasetNotFoundError
from .imagenet import ImageFolderDataset, imagenet_dataset
from .load import balanced_subset, load_split, to_float
from .paths import DATA_ROOT_ENV, cache_dir, default_data_root, raw_dir
from .prepare import prepare
from .proxy import to_proxy32
from .registry import DATASETS, SPLITS, DatasetInfo, dataset_names, get_info

__all__ = [
    "DATASETS",
    "DATA_ROOT_ENV",
    "SPLITS",
    "DataVerificationError",
    "DatasetInfo",
    "DatasetNotFoundError",
    "ImageFolderDataset",
    "SplitBatches",
    "StreamedBatches",
    "TensorBatches",
    "as_batches",
    "balanced_subset",
    "cache_dir",
    "cutout",
    "dataset_names",
    "default_data_root",
    "get_info",
    "imagenet_dataset",
    "load_split",
    "prepare",
    "random_crop_flip",
    "raw_dir",
    "streamed",
    "to_float",
    "to_proxy32",
]
