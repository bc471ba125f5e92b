"""The CQ networks (docs/methods/cq.md, §5): VGG-* and VGG-11/13/16/19 with one linear classifier, and MNIST nets.

Every model is an nn.Sequential that starts with an input quantizer site, has Conv -> BN -> act (-> Dropout2d)
blocks, and follows every 2x2 average pooling with a pool quantizer site (methods/cq/activation.py); odd feature
maps are zero-padded at the bottom/right before pooling so that each pooled value is a fixed 1/4-weight sum
(docs/methods/cq.md, §4.5). `act` makes the hidden activation: `ClampQuantize` for method cq. Convs have no bias (the
folded BatchNorm supplies it).

LeNet* (the paper's MNIST net) was not available (docs/methods/cq.md, §5.3), so two stand-ins are registered:
  lenet_cq   - the harness's LeNet-style 16-32-128 net (models/lenet.py) with CQ sites and BN on the hidden fc
               layer: the same topology as the QCFS `lenet`, so the two methods are compared on one network;
  mnist7_cq  - the only MNIST CNN in the authors' code (docs/methods/cq.md, §5.3: seven convs, strided instead of
               pooling).
"""
from __future__ import annotations

from torch import nn

from . import MODELS
from ..methods.cq.activation import GridQuantizer

# (width, padding) per conv, "M" = 2x2 average pooling.
CQ_VGG_CFGS = {
    # VGG-*, config 'o' of the authors' vgg.py (docs/methods/cq.md, §5.2): seven convs, the 1024-wide one without
    # padding.
    "vgg_star": [128, 128, "M", 256, 256, "M", 512, 512, "M", (1024, 0), "M"],
    "vgg11_cq": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg13_cq": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16_cq": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19_cq": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
                 512, 512, 512, 512, "M"],
    # Small VGG for the embedded Fashion-MNIST run (same widths as the QCFS `vgg_mini`, single classifier).
    "vgg_mini_cq": [16, 16, "M", 32, 32, "M", 64, "M"],
}
# Dropout2d after each conv block / after each pool, as in the authors' scripts (docs/methods/cq.md, §5.1-5.2).
CQ_VGG_DROPOUT = {"vgg_star": (0.15, 0.15), "vgg11_cq": (0.2, 0.3), "vgg13_cq": (0.2, 0.3),
                  "vgg16_cq": (0.2, 0.3), "vgg19_cq": (0.2, 0.3), "vgg_mini_cq": (0.0, 0.0)}


def _pool(side: int, dropout: float) -> tuple[list[nn.Module], int]:
    layers: list[nn.Module] = [nn.ZeroPad2d((0, 1, 0, 1))] if side % 2 else []
    layers += [nn.AvgPool2d(2, 2), GridQuantizer("pool")]
    if dropout:
        layers.append(nn.Dropout2d(dropout))
    return layers, (side + 1) // 2


def cq_vgg(cfg, *, num_classes: int, in_channels: int, image_size: int, act, conv_dropout: float = 0.0,
           pool_dropout: float = 0.0) -> nn.Sequential:
    layers: list[nn.Module] = [GridQuantizer("input")]
    ch, side = in_channels, image_size
    for item in cfg:
        if item == "M":
            pool, side = _pool(side, pool_dropout)
            layers += pool
            continue
        width, pad = item if isinstance(item, tuple) else (item, 1)
        conv = nn.Conv2d(ch, width, 3, padding=pad, bias=False)
        nn.init.kaiming_normal_(conv.weight, mode="fan_in", nonlinearity="relu")  # [C]: features only
        layers += [conv, nn.BatchNorm2d(width), act()]
        if conv_dropout:
            layers.append(nn.Dropout2d(conv_dropout))
        ch, side = width, side + 2 * pad - 2
        if side < 1:
            raise ValueError(f"image size {image_size} is too small for this VGG configuration")
    layers += [nn.Flatten(), nn.Linear(ch * side * side, num_classes)]
    return nn.Sequential(*layers)


def _register_vgg(name):
    @MODELS.register(name)
    def build(*, num_classes, in_channels, image_size, act):
        conv_dropout, pool_dropout = CQ_VGG_DROPOUT[name]
        return cq_vgg(CQ_VGG_CFGS[name], num_classes=num_classes, in_channels=in_channels, image_size=image_size,
                      act=act, conv_dropout=conv_dropout, pool_dropout=pool_dropout)
    return build


for _name in CQ_VGG_CFGS:
    _register_vgg(_name)


@MODELS.register("lenet_cq")
def lenet_cq(*, num_classes: int, in_channels: int, image_size: int, act) -> nn.Sequential:
    # 28 -> conv5 -> 24 -> pool -> 12 -> conv5 -> 8 -> pool -> 4 (as models/lenet.py)
    side = ((image_size - 4) // 2 - 4) // 2
    return nn.Sequential(
        GridQuantizer("input"),
        nn.Conv2d(in_channels, 16, 5, bias=False), nn.BatchNorm2d(16), act(), nn.AvgPool2d(2), GridQuantizer("pool"),
        nn.Conv2d(16, 32, 5, bias=False), nn.BatchNorm2d(32), act(), nn.AvgPool2d(2), GridQuantizer("pool"),
        nn.Flatten(),
        nn.Linear(32 * side * side, 128, bias=False), nn.BatchNorm1d(128), act(),
        nn.Linear(128, num_classes),
    )


@MODELS.register("mnist7_cq")
def mnist7_cq(*, num_classes: int, in_channels: int, image_size: int, act) -> nn.Sequential:
    # (out channels, kernel, stride, padding); 28 -> 26 -> 24 -> 12 -> 10 -> 8 -> 4 -> 2, 128 * 2 * 2 = 512
    convs = [(32, 3, 1, 0), (32, 3, 1, 0), (32, 4, 2, 1), (64, 3, 1, 0), (64, 3, 1, 0), (64, 4, 2, 1),
            (128, 3, 1, 0)]
    layers: list[nn.Module] = [GridQuantizer("input")]
    ch, side = in_channels, image_size
    for width, k, stride, pad in convs:
        layers += [nn.Conv2d(ch, width, k, stride, pad, bias=False), nn.BatchNorm2d(width), act()]
        ch, side = width, (side + 2 * pad - k) // stride + 1
    layers += [nn.Flatten(), nn.Linear(ch * side * side, num_classes)]
    return nn.Sequential(*layers)
