"""LeNet-style MNIST network used by the embedded default (average pooling, BN after each conv)."""
from __future__ import annotations

from torch import nn

from . import MODELS


@MODELS.register("lenet")
def lenet(*, num_classes: int, in_channels: int, image_size: int, act) -> nn.Module:
    # 28 -> conv5 -> 24 -> pool -> 12 -> conv5 -> 8 -> pool -> 4
    side = ((image_size - 4) // 2 - 4) // 2
    return nn.Sequential(
        nn.Conv2d(in_channels, 16, 5, bias=False), nn.BatchNorm2d(16), act(), nn.AvgPool2d(2),
        nn.Conv2d(16, 32, 5, bias=False), nn.BatchNorm2d(32), act(), nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * side * side, 128), act(),
        nn.Linear(128, num_classes),
    )
