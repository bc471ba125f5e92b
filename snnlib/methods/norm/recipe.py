"""Training recipe "relu": the experiment's network with plain ReLU activations (the twin of its QCFS network).

Trained like the QCFS ANN (training.train: SGD + momentum, the experiment's schedule, weight decay, augmentation)
but there is no lambda: no calibration of thresholds before training and no trainable clipping. The network has
no quantization, so its two report views, "ann_quantized" and "ann_clip", are both the plain ReLU network (the
converted SNN's limit is the ReLU network clipped at each layer's scale, which depends on the conversion's
calibration, not on the recipe).
"""
from __future__ import annotations

from pathlib import Path

from typing import Any, Callable

import torch
from torch import nn

from ..base import Recipe
from .conversion import MAX_POOLING, OTHER_ACTIVATIONS


class ReluRecipe(Recipe):
    name = "relu"

    def check(self, exp: dict) -> None:
        """The network, built with ReLU, must be convertible: no max pooling, no other activation module (the CQ
        networks carry quantizer sites, for instance). Built on the meta device, so it costs no memory."""
        from ...config import ConfigError
        with torch.device("meta"):
            model = self.build(exp)
        for name, m in model.named_modules():
            if isinstance(m, MAX_POOLING + OTHER_ACTIVATIONS):
                raise ConfigError(f"recipe relu: model {exp['model']!r} has a {type(m).__name__} ({name!r}); "
                                  "MaxNorm/RobustNorm need a ReLU network with average pooling")

    def build(self, exp: dict) -> nn.Module:
        from ...data import get_info
        from ...models import create_model
        info = get_info(exp["dataset"])
        return create_model(exp["model"], num_classes=info.num_classes, in_channels=info.in_channels,
                            image_size=info.image_size, act=nn.ReLU)

    def train(self, ctx: Any) -> dict:
        """Train ctx.model (stages.TrainContext) in place with the experiment's `train` settings, as the QCFS
        recipe trains (SGD, momentum, schedule, augmentation), resuming from its checkpoint folder. Returns
        {"history": per-epoch rows}."""
        from ...training import TrainSettings, train
        t = ctx.exp["train"]
        settings = TrainSettings(epochs=t["epochs"], batch_size=t["batch_size"], lr=t["lr"], momentum=t["momentum"],
                                 weight_decay=t["weight_decay"], schedule=t["schedule"],
                                 checkpoint_every_s=t.get("checkpoint_every_s"))
        data = ctx.data.to(ctx.device) if hasattr(ctx.data, "to") else ctx.data
        result = train(ctx.model, data, None, ctx.to_input, settings, ctx.seed, Path(ctx.ckpt_dir) / "train_state.pt",
                       ctx.augment, ctx.log, fingerprint=ctx.fingerprint)
        return {"history": result["history"]}

    def views(self) -> dict[str, Callable[[nn.Module], nn.Module]]:
        def plain(model: nn.Module) -> nn.Module:
            return model
        return {"ann_quantized": plain, "ann_clip": plain}


RELU = ReluRecipe()
