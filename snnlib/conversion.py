"""ANN -> SNN conversion as a short recipe of named steps (spec srp_qcfs.md §2):

validate  -> the ANN has only convertible parts (no max pooling, no ReLU left, positive thresholds)
replace   -> every QCFS activation becomes an IF layer with theta = lambda and v0 = theta / 2
finalize  -> eval mode (BatchNorm acts as the fixed affine map of its running statistics), no gradients

Weights are copied unchanged: the trained lambda *is* the threshold, so no data-based normalisation is needed.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from .activations import QCFS
from .neurons import IFNeuron


class ConversionError(ValueError):
    pass


def validate(ann: nn.Module) -> None:
    for name, m in ann.named_modules():
        if isinstance(m, (nn.MaxPool2d, nn.AdaptiveMaxPool2d)):
            raise ConversionError(f"module {name!r} is max pooling, which has no rate-coded IF equivalent; "
                                  "build the model with average pooling (spec srp_qcfs.md §1.4)")
        if isinstance(m, (nn.ReLU, nn.ReLU6)):
            raise ConversionError(f"module {name!r} is a ReLU; only QCFS activations are converted")
        if isinstance(m, QCFS) and not float(m.lam.detach()) > 0:
            raise ConversionError(f"QCFS layer {name!r} has lambda = {float(m.lam.detach()):.4g} <= 0; retrain with a "
                                  "larger lambda_init (QCFS issue #10)")
    if not any(isinstance(m, QCFS) for m in ann.modules()):
        raise ConversionError("the model has no QCFS activation to convert")


def _replace(module: nn.Module, v0_fraction: float) -> int:
    count = 0
    for name, child in module.named_children():
        if isinstance(child, QCFS):
            setattr(module, name, IFNeuron(child.lam.detach().clone(), v0_fraction))
            count += 1
        else:
            count += _replace(child, v0_fraction)
    return count


def convert(ann: nn.Module, v0_fraction: float = 0.5) -> nn.Module:
    """Return the IF-neuron SNN of a trained QCFS ANN (the ANN is left untouched)."""
    validate(ann)
    snn = copy.deepcopy(ann)
    _replace(snn, v0_fraction)
    snn.eval()
    for p in snn.parameters():
        p.requires_grad_(False)
    return snn


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
