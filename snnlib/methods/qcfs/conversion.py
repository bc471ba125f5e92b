"""QCFS ANN -> IF SNN conversion as a short recipe of named steps (docs/methods/qcfs.md):

validate  -> the ANN has only convertible parts (no max pooling, no ReLU left, positive thresholds)
replace   -> every QCFS activation becomes an IF layer with theta = lambda and v0 = v0_fraction * theta
             (theta / 2 in QCFS; 0 in the qcfs_v0zero ablation)
finalize  -> eval mode (BatchNorm acts as the fixed affine map of its running statistics), no gradients

Weights are copied unchanged: the trained lambda *is* the threshold, so no data-based normalisation is needed.
"""
from __future__ import annotations

import copy

from torch import nn

from ...conversion import ConversionError, refuse_max_pooling
from ...neurons import IFNeuron
from .activation import QCFS


def validate(ann: nn.Module) -> None:
    for name, m in ann.named_modules():
        refuse_max_pooling(name, m, "build the model with average pooling (docs/methods/qcfs.md)")
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
