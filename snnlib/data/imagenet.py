"""ImageNet (ILSVRC-2012) streamed from a user's ImageFolder tree: `<root>/{train,val}/<wnid>/*.JPEG`.

Decoding uses Pillow (imported lazily: only this loader needs it); the standard transforms are written here with
PIL and torch, since torchvision does not install next to the CPU torch used by the harness:
evaluation = resize the shorter side to 256 + centre crop 224; training = RandomResizedCrop(224) + horizontal flip.
Images come out as uint8 [3, H, W] tensors; `to_float(x, "imagenet", normalize=True)` normalises a batch.
"""
from __future__ import annotations

import copy
import math
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .errors import DatasetNotFoundError
from .paths import raw_dir

IMAGENET_FOLDER = "imagenet"  # <data_root>/raw/imagenet/{train,val}/<wnid>/
SPLIT_FOLDERS = {"train": "train", "test": "val", "val": "val"}
IMAGE_SUFFIXES = {".jpeg", ".jpg", ".png"}


def _pil_image():
    try:
        from PIL import Image
    except ImportError as err:
        raise ImportError("the ImageNet loader needs Pillow: pip install pillow") from err
    return Image


def pil_to_uint8_chw(image) -> torch.Tensor:
    array = np.asarray(image.convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()


def resize_center_crop(image, resize: int = 256, crop: int = 224):
    """Scale the shorter side to `resize` (bilinear, antialiased), then cut the central `crop` x `crop`."""
    Image = _pil_image()
    width, height = image.size
    scale = resize / min(width, height)
    new_w, new_h = max(crop, round(width * scale)), max(crop, round(height * scale))
    image = image.resize((new_w, new_h), Image.BILINEAR)
    left, top = (new_w - crop) // 2, (new_h - crop) // 2
    return image.crop((left, top, left + crop, top + crop))


def _uniform(low: float, high: float, generator: torch.Generator | None) -> float:
    return low + (high - low) * torch.rand(1, generator=generator).item()


def _randint(low: int, high_inclusive: int, generator: torch.Generator | None) -> int:
    return int(torch.randint(low, high_inclusive + 1, (1,), generator=generator).item())


def random_resized_crop_box(
    width: int,
    height: int,
    generator: torch.Generator | None = None,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> tuple[int, int, int, int]:
    """(left, top, crop_w, crop_h) of the Inception-style crop: area a uniform fraction `scale` of the image,
    aspect ratio log-uniform in `ratio`; after 10 misses, the central crop with the ratio clamped."""
    area = width * height
    log_low, log_high = math.log(ratio[0]), math.log(ratio[1])
    for _ in range(10):
        target_area = area * _uniform(scale[0], scale[1], generator)
        aspect = math.exp(_uniform(log_low, log_high, generator))
        crop_w = round(math.sqrt(target_area * aspect))
        crop_h = round(math.sqrt(target_area / aspect))
        if 0 < crop_w <= width and 0 < crop_h <= height:
            return _randint(0, width - crop_w, generator), _randint(0, height - crop_h, generator), crop_w, crop_h
    image_ratio = width / height
    if image_ratio < ratio[0]:
        crop_w, crop_h = width, round(width / ratio[0])
    elif image_ratio > ratio[1]:
        crop_w, crop_h = round(height * ratio[1]), height
    else:
        crop_w, crop_h = width, height
    return (width - crop_w) // 2, (height - crop_h) // 2, crop_w, crop_h


def random_resized_crop_flip(image, size: int = 224, generator: torch.Generator | None = None):
    Image = _pil_image()
    left, top, crop_w, crop_h = random_resized_crop_box(image.size[0], image.size[1], generator)
    image = image.resize((size, size), Image.BILINEAR, box=(left, top, left + crop_w, top + crop_h))
    if torch.rand(1, generator=generator).item() < 0.5:
        image = image.transpose(Image.FLIP_LEFT_RIGHT)
    return image


class ImageFolderDataset(Dataset):
    """Lazy (image uint8 [3, S, S], label) pairs from `<split_dir>/<class>/*.{jpeg,jpg,png}`.

    Class indices follow the sorted folder names of `class_dir` (the train folder for ImageNet, so train and
    val agree even if val lacks a class). `train=True` applies the random crop + flip, else resize + centre crop.
    `load(index, generator)` draws the crop and flip from the generator it is given: the streaming data path
    (data/batches.py) seeds one per image and epoch, so the result does not depend on DataLoader workers.
    `dataset[index]` uses the dataset's own `generator`, or torch's global RNG without one (which DataLoader
    seeds per worker; a `generator` would be copied into every worker unchanged).
    """

    def __init__(
        self,
        split_dir: str | os.PathLike,
        train: bool,
        class_dir: str | os.PathLike | None = None,
        image_size: int = 224,
        resize_size: int = 256,
        generator: torch.Generator | None = None,
    ):
        self.split_dir = Path(split_dir)
        class_dir = Path(class_dir) if class_dir is not None else self.split_dir
        self.classes = sorted(p.name for p in class_dir.iterdir() if p.is_dir())
        self.class_to_idx = {name: i for i, name in enumerate(self.classes)}
        self.samples = [
            (path, self.class_to_idx[folder.name])
            for folder in sorted(p for p in self.split_dir.iterdir() if p.is_dir())
            if folder.name in self.class_to_idx
            for path in sorted(folder.iterdir())
            if path.suffix.lower() in IMAGE_SUFFIXES
        ]
        self.train, self.image_size, self.resize_size, self.generator = train, image_size, resize_size, generator

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.load(index, self.generator)

    def load(self, index: int, generator: torch.Generator | None) -> tuple[torch.Tensor, int]:
        """Decode and transform one image; the training transform draws from `generator` (global RNG if None)."""
        Image = _pil_image()
        path, label = self.samples[index]
        with Image.open(path) as image:
            image = image.convert("RGB")  # ImageNet has a few grayscale and CMYK JPEGs
        if self.train:
            image = random_resized_crop_flip(image, self.image_size, generator)
        else:
            image = resize_center_crop(image, self.resize_size, self.image_size)
        return pil_to_uint8_chw(image), label

    def labels(self) -> torch.Tensor:
        """int64 [N]: every file's class, from the folder names (no image is decoded)."""
        return torch.tensor([label for _, label in self.samples], dtype=torch.int64)

    def unaugmented(self) -> ImageFolderDataset:
        """The same files with the evaluation transform (resize + centre crop); the file list is shared."""
        view = copy.copy(self)
        view.train = False
        return view


def imagenet_dataset(
    split: str, data_root: str | os.PathLike | None = None, *, root: str | os.PathLike | None = None,
    generator: torch.Generator | None = None,
) -> ImageFolderDataset:
    """ImageNet 'train' (augmented) or 'test'/'val' (the 50k validation images, centre-cropped).

    `root` is the folder holding train/ and val/; it defaults to `<data_root>/raw/imagenet`.
    """
    if split not in SPLIT_FOLDERS:
        raise ValueError(f"unknown split {split!r}; valid splits: {', '.join(SPLIT_FOLDERS)}")
    root = Path(root) if root is not None else raw_dir(data_root) / IMAGENET_FOLDER
    split_dir = root / SPLIT_FOLDERS[split]
    if not split_dir.is_dir():
        raise DatasetNotFoundError(
            f"ImageNet not found: {split_dir} does not exist. ImageNet cannot be downloaded in this environment; "
            f"put ILSVRC-2012 in ImageFolder layout (train/<wnid>/*.JPEG, and val/<wnid>/*.JPEG with the validation "
            f"images sorted into class folders) at {root}, "
            "or set SNNLIB_DATA to a data root whose raw/imagenet has it"
        )
    class_dir = root / "train" if (root / "train").is_dir() else split_dir
    dataset = ImageFolderDataset(split_dir, train=split == "train", class_dir=class_dir, generator=generator)
    if len(dataset) == 0:
        raise DatasetNotFoundError(
            f"ImageNet {split} split is empty: {split_dir} has no *.JPEG/*.jpg/*.png files in class folders "
            f"(<wnid>/<image>); expected the ImageFolder layout under {root}"
        )
    return dataset
