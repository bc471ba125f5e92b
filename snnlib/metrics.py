"""Operation counts and energy estimates from real forward passes (NeuroBench's definitions, spec field.md §0, §1).

For every Conv2d / Linear layer and every call:
  dense      every (input, weight) pair the layer touches: its MACs as an ANN would do them
  effective  only pairs with a non-zero input and a non-zero weight
             -> effective ACs when the layer's input is the output of an IF layer (spikes of one amplitude theta,
                folded into the weights, so each is an addition), effective MACs otherwise (the analog image, or
                average-pooled spikes, which NeuroBench also counts as non-binary)
Whether an input is spikes is decided by where it comes from (the very tensor an IF layer emitted, or a view
of it such as a flatten), not by its values: a uniform analog image would look binary.
Pooling, BatchNorm and the IF updates themselves are not counted (NeuroBench's convention).

Energy uses a stated cost table; the default is Horowitz (ISSCC 2014), 45 nm, FP32: MAC 4.6 pJ, AC 0.9 pJ.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

HOROWITZ_45NM_FP32 = {"mac_pj": 4.6, "ac_pj": 0.9, "source": "Horowitz, ISSCC 2014, 45 nm, FP32"}


def layer_ops(module: nn.Module, x: torch.Tensor) -> tuple[float, float]:
    """(dense pairs, effective pairs) of one call of a Conv2d or Linear layer on x."""
    w_nz = (module.weight != 0).to(x.dtype)
    x_nz = (x != 0).to(x.dtype)
    if isinstance(module, nn.Conv2d):
        kw = dict(stride=module.stride, padding=module.padding, dilation=module.dilation, groups=module.groups)
        effective = F.conv2d(x_nz, w_nz, **kw).sum()
        dense = F.conv2d(torch.ones_like(x[:1]), torch.ones_like(w_nz), **kw).sum() * x.shape[0]
    else:
        effective = F.linear(x_nz, w_nz).sum()
        dense = torch.tensor(float(module.weight.numel() * (x.numel() // x.shape[-1])))
    return float(dense), float(effective)


class OpCounter:
    """Accumulates dense ops, effective ACs and effective MACs over every Conv2d/Linear call while attached."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.totals = {"dense": 0.0, "acs": 0.0, "macs": 0.0}
        self._handles = []
        self._spikes: list[torch.Tensor] = []  # IF outputs of the current forward, held so no address is reused

    def _hook(self, module, inputs, output):
        x = inputs[0]
        dense, effective = layer_ops(module, x)
        spiking = any(x.data_ptr() == s.data_ptr() for s in self._spikes)
        self.totals["dense"] += dense
        self.totals["acs" if spiking else "macs"] += effective

    @contextmanager
    def counting(self):
        from .neurons import IFNeuron
        self._handles = [m.register_forward_hook(self._hook) for m in self.model.modules()
                         if isinstance(m, (nn.Conv2d, nn.Linear))]
        self._handles += [m.register_forward_hook(lambda mod, inp, out: self._spikes.append(out))
                          for m in self.model.modules() if isinstance(m, IFNeuron)]
        self._handles.append(self.model.register_forward_pre_hook(lambda mod, inp: self._spikes.clear()))
        try:
            yield self
        finally:
            for h in self._handles:
                h.remove()
            self._handles = []
            self._spikes.clear()

    def snapshot(self) -> dict[str, float]:
        return dict(self.totals)


def energy_pj(acs: float, macs: float, costs: dict = HOROWITZ_45NM_FP32) -> float:
    return acs * costs["ac_pj"] + macs * costs["mac_pj"]


@torch.no_grad()
def ann_macs(ann: nn.Module, x: torch.Tensor) -> float:
    """Dense MACs of one ANN forward per image (all pairs, as a dense accelerator computes them)."""
    counter = OpCounter(ann)
    was = ann.training
    ann.eval()
    with counter.counting():
        ann(x)
    ann.train(was)
    return counter.totals["dense"] / x.shape[0]


def firing_rate(spike_count: torch.Tensor, steps: int) -> float:
    """Mean spikes per neuron per step."""
    return float(spike_count.float().mean()) / steps


def activation_sparsity(spikes: torch.Tensor) -> float:
    """Share of zero entries (NeuroBench: 0 = dense, 1 = all zero)."""
    return float((spikes == 0).float().mean())
