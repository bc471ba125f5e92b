"""The images an experiment trains and evaluates on: which split, which subset, in which input form.

In-memory datasets (MNIST, Fashion-MNIST, CIFAR, the 32x32 proxy) load whole into one uint8 tensor; ImageNet
streams from its ImageFolder through a DataLoader (data/batches.py). The evaluation images are a documented subset
of the test split, the same for every method and seed, so per-image outcomes pair across methods.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Callable

import torch

from .config import REPO_ROOT
from .data import (SplitBatches, TensorBatches, balanced_subset, cutout, get_info, imagenet_dataset, load_split,
                   random_crop_flip, streamed, to_float)
from .data.autoaugment import cifar10_autoaugment


def data_root(cfg: dict) -> Path:
    root = Path(os.environ.get("SNNLIB_DATA") or cfg["data_root"])
    return root if root.is_absolute() else REPO_ROOT / root


def data_workers(cfg: dict, workers: int | None = None) -> int:
    """DataLoader processes that decode a streamed dataset (ImageNet): `workers` (the CLI's --workers), else the
    config's data_workers, else one per torch thread, i.e. per CPU core the job was given (--threads)."""
    if workers is None:
        workers = cfg.get("data_workers")
    return torch.get_num_threads() if workers is None else workers


def memory_format(exp: dict) -> torch.memory_format:
    """The layout the experiment's networks and inputs use (config key `memory_format`)."""
    return torch.channels_last if exp.get("memory_format") == "channels_last" else torch.contiguous_format


def in_layout(model: torch.nn.Module, exp: dict) -> torch.nn.Module:
    """`model` with its 4-d weights in the experiment's memory format (a no-op for the default layout)."""
    fmt = memory_format(exp)
    return model if fmt is torch.contiguous_format else model.to(memory_format=fmt)


def input_fn(exp: dict, device: torch.device) -> Callable[[torch.Tensor], torch.Tensor]:
    info = get_info(exp["dataset"])
    fmt = memory_format(exp)
    # non_blocking: a streamed batch sits in pinned memory on CUDA runs, so its copy overlaps the work queued before
    if fmt is torch.contiguous_format:
        return lambda xb: to_float(xb.to(device, non_blocking=True), info, exp["normalize"])
    return lambda xb: to_float(xb.to(device, non_blocking=True), info, exp["normalize"]).contiguous(memory_format=fmt)


def ann_batch_size(exp: dict) -> int:
    """Batch of the ANN accuracy passes: 500 for the small in-memory images; for ImageNet the training batch, which
    is known to fit on the device (500 images through VGG-16 at 224x224 need ~15 GB of activations)."""
    return 500 if get_info(exp["dataset"]).in_memory else exp["train"]["batch_size"]


def eval_subset(exp: dict, y: torch.Tensor) -> torch.Tensor:
    """Indices of the evaluation images: a documented class-balanced subset, or the whole test set. For ImageNet
    the labels come from the file list, so the subset is chosen without decoding an image."""
    per_class = exp["eval"]["test_per_class"]
    if per_class is None:
        return torch.arange(len(y))
    return balanced_subset(y, per_class, exp["eval"]["subset_seed"])


def load_data(cfg, exp, split: str, seed: int, max_samples: int | None, device=None,
              workers: int | None = None) -> SplitBatches:
    """The batches of a split, limited to `max_samples` images drawn with `seed` (all when None). A missing
    ImageFolder raises DatasetNotFoundError saying where it was looked for."""
    info = get_info(exp["dataset"])
    gen = torch.Generator().manual_seed(seed)
    if info.in_memory:
        x, y = load_split(exp["dataset"], split, data_root(cfg))
        if max_samples is not None:
            keep = torch.randperm(len(y), generator=gen)[:max_samples]
            x, y = x[keep], y[keep]
        return TensorBatches(x, y)
    data = streamed(imagenet_dataset(split, data_root(cfg)), data_workers(cfg, workers), device)
    if max_samples is not None:
        data = data.subset(torch.randperm(len(data), generator=gen)[:max_samples])
    return data


def training_data(cfg, exp, seed, device=None, workers=None) -> tuple[SplitBatches, SplitBatches]:
    data = load_data(cfg, exp, "train", seed, exp["train"]["max_samples"], device, workers)
    return data, test_data(cfg, exp, device, workers)


def test_data(cfg, exp, device=None, workers=None) -> SplitBatches:
    """The test split (or its `eval.max_samples` sample) that ANN accuracies and the evaluation subset index."""
    ev = exp["eval"]
    return load_data(cfg, exp, "test", ev["subset_seed"], ev["max_samples"], device, workers)


def subset_description(exp: dict) -> str:
    ev = exp["eval"]
    return ("full test set" if ev["test_per_class"] is None else
            f"class-balanced, {ev['test_per_class']} per class, seed {ev['subset_seed']}")


def data_fingerprint(data: SplitBatches, idx: torch.Tensor) -> str:
    """sha256 of what the evaluated images are: their pixels and labels where they sit in memory; for a streamed
    split, its file names and labels (decoding 50k JPEGs for a checksum would cost more than the evaluation)."""
    h = hashlib.sha256()
    idx = idx.cpu()
    h.update(data.labels.cpu()[idx].to(torch.int64).numpy().tobytes())
    if isinstance(data, TensorBatches):
        h.update(data.x[idx].contiguous().numpy().tobytes())
    else:  # StreamedBatches: idx indexes its file_indices into the ImageFolder's samples
        samples = data.dataset.samples
        for i in data.file_indices[idx].tolist():
            h.update(Path(samples[i][0]).name.encode())
    return h.hexdigest()[:16]


def training_input(aug: dict, to_input: Callable) -> Callable | None:
    """uint8 batch -> augmented network input, in the papers' order: random crop, flip and AutoAugment on the
    pixels, then normalisation, then Cutout (so its hole is 0 in normalised space). None without augmentation."""
    if not any(aug.values()):
        return None

    def prepare(xb, gen):
        if aug["crop_padding"] or aug["flip"]:
            xb = random_crop_flip(xb, aug["crop_padding"], gen, flip=aug["flip"])
        if aug["autoaugment"]:
            xb = cifar10_autoaugment(xb, gen)
        xb = to_input(xb)
        if aug["cutout"]:
            xb = cutout(xb, aug["cutout"], gen)
        return xb
    return prepare
