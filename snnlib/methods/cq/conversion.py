"""CNN -> SNN transfer of a CQ-trained network (docs/methods/cq.md, §4) as a recipe of named steps:

validate -> the network has only convertible parts (no max pooling, no ReLU module, CQ sites incl. the input site)
fold_bn  -> BatchNorm folded into the preceding conv / linear layer (conversion.fold_batchnorm, running statistics)
replace  -> input site -> IF spike encoder (encoding.py); ClampQuantize and pool site -> IF neuron with threshold 1,
            reset by subtraction, v0 = offset + guard (activation.py); dropout -> identity. Weights are copied
            unchanged: threshold 1 *is* activation 1, so no rescaling by T (docs/methods/cq.md, §4.2)
finalize -> eval mode, no gradients

The average pooling stays an nn.AvgPool2d: at each step it is the fixed 1/4-weight sum of the binary spikes, which
then drives the pool's IF neuron. The final linear layer has no neuron; its per-step outputs are summed by the
cumulative readout (snnlib/engine), which has the same argmax as their average over T (docs/methods/cq.md, §4.7).

Why near lossless (docs/methods/cq.md, §4.8): an IF neuron (threshold 1, v0, subtract reset) that receives the
currents I_1..I_T fires count = v0 + P_T - V_T spikes, P_T = sum of I_t. If its membrane ends in [0, 1) that is
floor(P_T + v0) = grid_levels of the layer's CQ activation, because P_T = W . (input counts) + T b = T z.
`count_bounds` gives the exact interval the count lies in otherwise; `ann_view` is the quantized CNN that the SNN
reproduces.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from ...conversion import ConversionError, fold_batchnorm, refuse_max_pooling
from .activation import ClampQuantize, GridQuantizer, grid_levels
from .encoding import SpikeEncoder
from ...neurons import IFNeuron


def validate(ann: nn.Module) -> None:
    for name, m in ann.named_modules():
        refuse_max_pooling(name, m, "CQ networks use 2x2 average pooling (docs/methods/cq.md, §4.5)")
        if isinstance(m, (nn.ReLU, nn.ReLU6)):
            raise ConversionError(f"module {name!r} is a ReLU; CQ converts ClampQuantize activations only")
    if not any(isinstance(m, ClampQuantize) for m in ann.modules()):
        raise ConversionError("the model has no ClampQuantize activation to convert; use a *_cq model")
    inputs = [m for m in ann.modules() if isinstance(m, GridQuantizer) and m.site == "input"]
    if len(inputs) != 1:
        raise ConversionError(f"a CQ SNN needs exactly one input quantizer site to become its spike encoder, the "
                              f"model has {len(inputs)}; use a *_cq model (models/cq_nets.py)")


def _replace(module: nn.Module) -> int:
    count = 0
    for name, child in module.named_children():
        if isinstance(child, GridQuantizer) and child.site == "input":
            setattr(module, name, SpikeEncoder(child.v0))
        elif isinstance(child, (ClampQuantize, GridQuantizer)):
            setattr(module, name, IFNeuron(1.0, v0_fraction=child.v0))
        elif isinstance(child, (nn.Dropout, nn.Dropout2d)):
            setattr(module, name, nn.Identity())
        else:
            count += _replace(child)
            continue
        count += 1
    return count


def convert_cq(ann: nn.Module) -> nn.Module:
    """The IF-neuron SNN of a CQ network (the ANN is left untouched)."""
    validate(ann)
    snn = fold_batchnorm(ann)
    _replace(snn)
    snn.eval()
    for p in snn.parameters():
        p.requires_grad_(False)
    return snn


class LevelQuantizer(nn.Module):
    """What an IF neuron with threshold 1 and initial membrane v0 computes in the ideal case:
    grid_levels(x) / T = floor(T * clamp(x, 0, 1) + v0) / T."""

    def __init__(self, T: int, v0: float):
        super().__init__()
        self.T, self.v0 = int(T), float(v0)

    def forward(self, x):
        return grid_levels(x, self.T, 0.0, self.v0) / self.T


def ann_view(snn: nn.Module, T: int) -> nn.Module:
    """The BN-folded quantized CNN that `snn` implements at window T: every IF neuron (encoder included) replaced by
    the grid quantizer its initial membrane defines. Module names match the SNN's."""
    view = copy.deepcopy(snn)

    def swap(module):
        for name, child in module.named_children():
            if isinstance(child, IFNeuron):
                setattr(module, name, LevelQuantizer(T, child.v0_fraction))
            else:
                swap(child)
    swap(view)
    return view.eval()


def spiking_layer_names(snn: nn.Module) -> list[str]:
    return [name for name, m in snn.named_modules() if isinstance(m, IFNeuron)]


def spiking_layer_kinds(snn: nn.Module) -> dict[str, str]:
    """What drives each spiking layer: 'input encoder', or the type of the closest preceding conv / linear / pool."""
    kinds, last = {}, "input"
    for name, m in snn.named_modules():
        if isinstance(m, (nn.Conv2d, nn.Linear, nn.AvgPool2d)):
            last = {nn.Conv2d: "conv", nn.Linear: "linear", nn.AvgPool2d: "avg pool"}[type(m)]
        elif isinstance(m, SpikeEncoder):
            kinds[name] = "input encoder"
        elif isinstance(m, IFNeuron):
            kinds[name] = f"IF after {last}"
    return kinds


def spike_counts(snn: nn.Module) -> dict[str, torch.Tensor]:
    """Per-neuron spike counts since the last reset, by layer name (input encoder first)."""
    return {name: m.spike_count.clone() for name, m in snn.named_modules()
            if isinstance(m, IFNeuron) and m.spike_count is not None}


@torch.no_grad()
def ann_levels(model: nn.Module, x: torch.Tensor, T: int, names: list[str]) -> dict[str, torch.Tensor]:
    """T x the activations of the named quantizer modules of `model` on x, rounded to integers (the levels)."""
    seen: dict[str, torch.Tensor] = {}
    modules = dict(model.named_modules())
    handles = [modules[n].register_forward_hook(lambda mod, inp, out, n=n: seen.__setitem__(n, out))
               for n in names]
    try:
        model(x)
    finally:
        for h in handles:
            h.remove()
    return {n: torch.round(seen[n] * T) for n in names}


def count_bounds(currents: torch.Tensor, v0: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(lower, target, upper) for IF neurons (threshold 1, initial membrane v0, subtract reset, one spike per
    step at most) that receive `currents` [T, ...] (computed in float64).

    target = clamp(floor(P_T + v0), 0, T) is the CQ activation level. With D = max(0, max_s P_s - P_T) (how far the
    partial sums overshoot their final value: early spikes that later negative input does not take back) and
    E = max_u (P_T - P_u) - (T - u) (how far the input outruns one spike per step at the end), the count lies in
    [clamp(floor(P_T + v0 - E), 0, T), clamp(floor(P_T + v0 + D), 0, T)], which is {target} when D = E = 0:
    then the SNN reproduces the quantized CNN exactly (docs/methods/cq.md, §4.8)."""
    cur = currents.to(torch.float64)
    T = cur.shape[0]
    partial = cur.cumsum(0)
    total = partial[-1]
    overshoot = (partial.amax(0) - total).clamp(min=0)
    steps_left = torch.arange(T, -1, -1, dtype=torch.float64, device=cur.device)  # T - u for u = 0..T
    steps_left = steps_left.reshape(-1, *([1] * (cur.dim() - 1)))
    prefix = torch.cat([torch.zeros_like(total)[None], partial])  # P_u for u = 0..T
    outrun = ((total[None] - prefix) - steps_left).amax(0)
    lower = torch.floor(total + v0 - outrun).clamp(0, T)
    target = torch.floor(total + v0).clamp(0, T)
    upper = torch.floor(total + v0 + overshoot).clamp(0, T)
    return lower, target, upper

