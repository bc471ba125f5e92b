"""Batches of one split, whether the split sits in memory or streams from disk.

Training, ANN accuracy, lambda calibration and the SNN evaluation read every split through this one interface:

- `TensorBatches` (MNIST, Fashion-MNIST, CIFAR, the proxy): the uint8 tensor in memory. A training epoch is
  `torch.randperm(n, generator)` cut into batches, the very draws the training loops made before this module
  existed, so in-memory results are bit-identical to theirs.
- `StreamedBatches` (ImageNet, `DatasetInfo.in_memory` False): a torch DataLoader over the ImageFolder, with
  `workers` decoding processes and pinned memory when the network runs on CUDA. A training epoch draws the same
  `randperm(n, generator)`, then one more number, the epoch's augmentation seed; each image's random crop and flip
  come from a generator seeded with (epoch seed, file index), so what an image looks like depends neither on the
  number of workers nor on which worker decodes it. The training loop checkpoints its generator at every epoch
  end, so an epoch's order and crops are a function of (seed, epoch), and an epoch resumed after a kill sees
  the same ones as the uninterrupted run. A mid-epoch checkpoint keeps the generator as the epoch began; the
  resumed epoch redraws its order from it and starts at the next batch (`shuffled(..., start=)`).

Only labels are known without decoding (`labels`): class-balanced subsets of ImageNet are chosen from the file
list, and `images(indices)` decodes a bounded number of images (calibration, the unevenness analysis).
"""
from __future__ import annotations

import signal
from typing import Iterator, Protocol

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

Batch = tuple[torch.Tensor, torch.Tensor]  # (images uint8 [B, C, H, W], labels int64 [B])

# In-order passes (evaluation, calibration) seed the DataLoader and any augmentation with this, so they draw
# nothing from the global RNG and give the same images every time.
IN_ORDER_SEED = 0


class SplitBatches(Protocol):
    """The images of one split (or of a subset of it), read a batch at a time."""

    labels: torch.Tensor  # int64 [N], known without decoding any image

    def __len__(self) -> int: ...

    def subset(self, indices: torch.Tensor) -> SplitBatches:
        """The images at these positions of this view, in this order."""

    def shuffled(self, batch_size: int, generator: torch.Generator, start: int = 0) -> Iterator[Batch]:
        """One training epoch in an order drawn from `generator` (drawn when the first batch is asked for), from
        its batch `start` on: the same draws whatever `start`, so a resumed epoch continues the interrupted one."""

    def in_order(self, batch_size: int) -> Iterator[Batch]:
        """Every image once, in this view's order (evaluation)."""

    def images(self, indices: torch.Tensor) -> torch.Tensor:
        """uint8 images at these positions, decoded into one tensor (keep the number bounded)."""

    def without_augmentation(self) -> SplitBatches:
        """The same images with the evaluation transform (resize + centre crop for ImageNet)."""

    def to(self, device: torch.device) -> SplitBatches:
        """Where the batches are handed out: in-memory data moves there whole, streamed data stays on the host."""


class TensorBatches:
    """A split held in memory as x uint8 [N, C, H, W] and y int64 [N]."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor):
        if len(x) != len(y):
            raise ValueError(f"{len(x)} images but {len(y)} labels")
        self.x, self.labels = x, y

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices: torch.Tensor) -> TensorBatches:
        return TensorBatches(self.x[indices], self.labels[indices])

    def shuffled(self, batch_size: int, generator: torch.Generator, start: int = 0) -> Iterator[Batch]:
        perm = torch.randperm(len(self), generator=generator)
        for i in range(start * batch_size, len(perm), batch_size):
            idx = perm[i:i + batch_size]
            yield self.x[idx], self.labels[idx]

    def in_order(self, batch_size: int) -> Iterator[Batch]:
        for i in range(0, len(self), batch_size):
            yield self.x[i:i + batch_size], self.labels[i:i + batch_size]

    def images(self, indices: torch.Tensor) -> torch.Tensor:
        return self.x[indices]

    def without_augmentation(self) -> TensorBatches:
        return self  # in-memory images are augmented a batch at a time by the training loop, never stored so

    def to(self, device: torch.device) -> TensorBatches:
        return TensorBatches(self.x.to(device), self.labels.to(device))


def image_seed(epoch_seed: int, index: int) -> int:
    """Seed of one image's augmentation in one epoch: well mixed, so neighbouring files get unrelated crops."""
    return int(np.random.SeedSequence((epoch_seed, index)).generate_state(1, np.uint64)[0])


class _SeededImages(Dataset):
    """dataset[(file index, epoch seed)] -> (image, label), augmented with that image's own generator."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, item: tuple[int, int]):
        index, epoch_seed = item
        return self.dataset.load(index, torch.Generator().manual_seed(image_seed(epoch_seed, index)))


def _ignore_sigterm(worker_id: int) -> None:
    """SLURM's SIGTERM (time limit, preemption) reaches every process of a job. A decoding worker that died of it
    would make the DataLoader raise in the training loop before it can save (snnlib/preemption.py); the workers
    end with the loop instead."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


class _FileOrder(Sampler):
    """Yields (file index, epoch seed) in a fixed order; the seed travels with the index to the worker."""

    def __init__(self, order: torch.Tensor, epoch_seed: int):
        self.order, self.epoch_seed = order, epoch_seed

    def __len__(self) -> int:
        return len(self.order)

    def __iter__(self):
        return ((index, self.epoch_seed) for index in self.order.tolist())


class StreamedBatches:
    """A split read image by image from disk through a DataLoader (`dataset.load(index, generator)` decodes one).

    `file_indices` selects and orders the files of this view (all of them by default); `workers` = 0 decodes in
    this process."""

    def __init__(self, dataset, workers: int = 0, pin_memory: bool = False,
                 file_indices: torch.Tensor | None = None, file_labels: torch.Tensor | None = None):
        if workers < 0:
            raise ValueError(f"workers must be >= 0, got {workers}")
        self.dataset, self.workers, self.pin_memory = dataset, workers, pin_memory
        self.file_indices = (torch.arange(len(dataset)) if file_indices is None
                             else torch.as_tensor(file_indices, dtype=torch.int64).reshape(-1))
        self.file_labels = file_labels if file_labels is not None else dataset.labels()
        self.labels = self.file_labels[self.file_indices]

    def __len__(self) -> int:
        return len(self.file_indices)

    def _view(self, file_indices: torch.Tensor, dataset=None) -> StreamedBatches:
        return StreamedBatches(self.dataset if dataset is None else dataset, self.workers, self.pin_memory,
                               file_indices, self.file_labels)

    def subset(self, indices: torch.Tensor) -> StreamedBatches:
        return self._view(self.file_indices[torch.as_tensor(indices, dtype=torch.int64)])

    def _load(self, order: torch.Tensor, batch_size: int, epoch_seed: int) -> Iterator[Batch]:
        loader = DataLoader(_SeededImages(self.dataset), batch_size=batch_size, sampler=_FileOrder(order, epoch_seed),
                            num_workers=self.workers, pin_memory=self.pin_memory, worker_init_fn=_ignore_sigterm,
                            # the DataLoader draws its workers' base seed from here, not from the global RNG
                            generator=torch.Generator().manual_seed(epoch_seed))
        yield from loader

    def shuffled(self, batch_size: int, generator: torch.Generator, start: int = 0) -> Iterator[Batch]:
        perm = torch.randperm(len(self), generator=generator)
        epoch_seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        # an image's crop depends on (epoch seed, file), not on its place in the epoch: skipping decodes nothing
        yield from self._load(self.file_indices[perm][start * batch_size:], batch_size, epoch_seed)

    def in_order(self, batch_size: int) -> Iterator[Batch]:
        yield from self._load(self.file_indices, batch_size, IN_ORDER_SEED)

    def images(self, indices: torch.Tensor) -> torch.Tensor:
        view = self.subset(indices)
        batches = [xb for xb, _ in view.in_order(max(1, min(len(view), 64)))]
        if not batches:
            return torch.empty((0, 3, self.dataset.image_size, self.dataset.image_size), dtype=torch.uint8)
        return torch.cat(batches)

    def without_augmentation(self) -> StreamedBatches:
        return self._view(self.file_indices, self.dataset.unaugmented())

    def to(self, device: torch.device) -> StreamedBatches:
        return self


def as_batches(x: torch.Tensor | SplitBatches, y: torch.Tensor | None = None) -> SplitBatches:
    """Callers pass either a split's batches or, as before this module, its tensors x and y."""
    if isinstance(x, torch.Tensor):
        if y is None:
            raise TypeError("images given as a tensor need their labels y")
        return TensorBatches(x, y)
    if y is not None:
        raise TypeError("labels come with the batches; pass y=None")
    return x


def streamed(dataset, workers: int, device: torch.device | str | None) -> StreamedBatches:
    """Batches of an on-disk dataset, pinned for fast host-to-GPU copies when the network runs on CUDA."""
    device = torch.device(device) if device is not None else torch.device("cpu")
    return StreamedBatches(dataset, workers=workers, pin_memory=device.type == "cuda")

