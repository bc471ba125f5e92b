"""VGG family with average pooling (QCFS/SRP VGG-16 of docs/methods/qcfs.md, §8, and small variants).

A config list holds conv widths and "M" for a 2x2 average pool; every conv is 3x3, padding 1, followed by BN and
an activation. `hidden` lists the widths of hidden fully connected layers (each followed by an activation).
"""
from __future__ import annotations

from torch import nn

from . import MODELS

CFGS = {
    "vgg_mini": [16, 16, "M", 32, 32, "M", 64, "M"],
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg13": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
              512, 512, 512, 512, "M"],
}
HIDDEN = {"vgg_mini": [128], "vgg11": [4096, 4096], "vgg13": [4096, 4096], "vgg16": [4096, 4096],
          "vgg19": [4096, 4096]}


class VGG(nn.Module):
    def __init__(self, cfg, hidden, *, num_classes, in_channels, image_size, act, dropout=0.0):
        super().__init__()
        layers, ch, side = [], in_channels, image_size
        for item in cfg:
            if item == "M":
                layers.append(nn.AvgPool2d(2, 2))
                side //= 2
            else:
                layers += [nn.Conv2d(ch, item, 3, padding=1), nn.BatchNorm2d(item), act()]
                if dropout:
                    layers.append(nn.Dropout(dropout))
                ch = item
        if side < 1:
            raise ValueError(f"image size {image_size} is too small for {cfg.count('M')} poolings")
        self.features = nn.Sequential(*layers)
        head, width = [nn.Flatten()], ch * side * side
        for h in hidden:
            head += [nn.Linear(width, h), act()]
            if dropout:
                head.append(nn.Dropout(dropout))
            width = h
        head.append(nn.Linear(width, num_classes))
        self.classifier = nn.Sequential(*head)
        for m in self.modules():  # docs/methods/qcfs.md, §8: kaiming (fan_out) convs, zero linear bias
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, x):
        return self.classifier(self.features(x))


def _register(name):
    @MODELS.register(name)
    def build(*, num_classes, in_channels, image_size, act):
        return VGG(CFGS[name], HIDDEN[name], num_classes=num_classes, in_channels=in_channels,
                   image_size=image_size, act=act)
    return build


for _name in CFGS:
    _register(_name)
