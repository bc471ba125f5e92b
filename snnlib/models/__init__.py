"""Model registry: every network a config can name (docs/methods/qcfs.md, §8; docs/methods/cq.md, §5)."""
from __future__ import annotations

from typing import Callable

from torch import nn

from ..registry import Registry

MODELS: Registry[Callable[..., nn.Module]] = Registry("model")
ActFactory = Callable[[], nn.Module]


def create_model(name: str, *, num_classes: int, in_channels: int, image_size: int,
                 act: ActFactory) -> nn.Module:
    """Build a registered model; `act` makes one fresh activation module per activation site."""
    return MODELS.get(name)(num_classes=num_classes, in_channels=in_channels, image_size=image_size, act=act)


from . import cq_nets, lenet, resnet, vgg  # noqa: E402,F401  (registration side effects)
