"""Conversion steps shared by every method: the error type and BatchNorm folding.
Each method's own conversion lives in its package (snnlib/methods/<name>/conversion.py).
"""
from __future__ import annotations

import copy

import torch
from torch import nn


class ConversionError(ValueError):
    pass


MAX_POOLING = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d,
               nn.AdaptiveMaxPool3d)


def refuse_max_pooling(name: str, module: nn.Module, hint: str) -> None:
    """Max pooling has no rate-coded IF equivalent: every conversion refuses it, `hint` saying what to use."""
    if isinstance(module, MAX_POOLING):
        raise ConversionError(f"module {name!r} is max pooling, which has no rate-coded IF equivalent; {hint}")


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Fold every BatchNorm that directly follows a Conv2d/Linear inside an nn.Sequential into that layer.

    W' = W * gamma / sqrt(var + eps),  b' = (b - mean) * gamma / sqrt(var + eps) + beta  (running statistics).
    Returns a folded copy; the BN modules become Identity so module indices stay stable.
    """
    model = copy.deepcopy(model).eval()
    for seq in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
        children = list(seq.named_children())
        for (_, layer), (bn_name, bn) in zip(children, children[1:]):
            if isinstance(bn, (nn.BatchNorm1d, nn.BatchNorm2d)) and isinstance(layer, (nn.Conv2d, nn.Linear)):
                scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
                shape = (-1,) + (1,) * (layer.weight.dim() - 1)
                bias = layer.bias.detach() if layer.bias is not None else torch.zeros_like(bn.running_mean)
                with torch.no_grad():
                    layer.weight.mul_(scale.reshape(shape))
                    layer.bias = nn.Parameter((bias - bn.running_mean) * scale + bn.bias.detach())
                setattr(seq, bn_name, nn.Identity())
    return model
