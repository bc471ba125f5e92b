"""Fashion-MNIST dressed as CIFAR (3x32x32) so CIFAR-shaped networks can run on real images here.

It is a proxy, not CIFAR: results on it must never be compared with the papers' CIFAR numbers.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def to_proxy32(x: torch.Tensor) -> torch.Tensor:
    """uint8 [N, 1, 28, 28] -> uint8 [N, 3, 32, 32]: zero-pad 2 pixels per side, repeat the channel 3 times."""
    if x.ndim != 4 or x.shape[1:] != (1, 28, 28):
        raise ValueError(f"expected [N, 1, 28, 28] images, got {tuple(x.shape)}")
    return F.pad(x, (2, 2, 2, 2)).repeat(1, 3, 1, 1)


# dataset name -> how it is computed from its registry entry's `derived_from` dataset
DERIVED_TRANSFORMS = {"fashion_mnist_proxy32": to_proxy32}
