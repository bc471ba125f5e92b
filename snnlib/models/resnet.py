"""ResNet-18/34 (CIFAR-style 3x3 stride-1 stem, also for ImageNet, docs/methods/qcfs.md, §8) and ResNet-20.

The activation after the residual addition is its own module, so conversion turns it into a spiking layer too.
"""
from __future__ import annotations

from torch import nn

from . import MODELS


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride, act):
        super().__init__()
        self.residual = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), act(),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout),
        )
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:  # projection shortcut, not He's zero-padding option A
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        self.act = act()

    def forward(self, x):
        return self.act(self.residual(x) + self.shortcut(x))


class ResNet(nn.Module):
    def __init__(self, blocks, widths, *, num_classes, in_channels, act):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(widths[0]), act())
        stages, cin = [], widths[0]
        for i, (n, w) in enumerate(zip(blocks, widths)):
            for j in range(n):
                stages.append(BasicBlock(cin, w, 2 if (j == 0 and i > 0) else 1, act))
                cin = w
        self.stages = nn.Sequential(*stages)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, num_classes))

    def forward(self, x):
        return self.head(self.stages(self.stem(x)))


_SPECS = {"resnet18": ([2, 2, 2, 2], [64, 128, 256, 512]),
          "resnet34": ([3, 4, 6, 3], [64, 128, 256, 512]),
          "resnet20": ([3, 3, 3], [16, 32, 64])}


def _register(name):
    blocks, widths = _SPECS[name]

    @MODELS.register(name)
    def build(*, num_classes, in_channels, image_size, act):
        return ResNet(blocks, widths, num_classes=num_classes, in_channels=in_channels, act=act)
    return build


for _name in _SPECS:
    _register(_name)
