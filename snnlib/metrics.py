"""Operation counts and energy estimates from real forward passes (NeuroBench's definitions; docs/efficiency.md).

For every Conv2d / Linear layer and every call:
  dense      every (input, weight) pair the layer touches: its MACs as an ANN would do them
  effective  only pairs with a non-zero input and a non-zero weight
             -> effective ACs when the layer's input is the output of an IF layer (spikes of one amplitude theta,
                folded into the weights, so each is an addition), effective MACs otherwise (the analog image, or
                average-pooled spikes, which NeuroBench also counts as non-binary)
Whether an input is spikes is decided by where it comes from (the very tensor an IF layer emitted, or a view
of it such as a flatten), not by its values: a uniform analog image would look binary. (The neurobench package
decides by value, all entries in {0, 1, -1}, and so counts spikes of amplitude theta != 1 as MACs: docs/efficiency.md,
§2 and §6; tests/test_neurobench.py.)
Pooling, BatchNorm and the IF updates themselves are not counted (NeuroBench's convention).

Two implementations: `layer_ops` / `OpCounter` count by brute force (a second convolution of the non-zero pattern
with the non-zero weights; the reference the tests check by hand), `SynOpsMeter` per time step and cheaply enough
for the whole evaluation set: an input's effective pairs are its non-zero entries weighted by each entry's fan-out
(how many non-zero weights connect it to an output), one pass over the input instead of a convolution.

Energy uses a stated cost table; the default is Horowitz (ISSCC 2014), 45 nm, FP32: MAC 4.6 pJ, AC 0.9 pJ.
"""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np
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


@contextmanager
def _counting_hooks(model: nn.Module, spikes: list, on_call, on_layer, on_neuron):
    """While active: `on_call` before every network call (after forgetting the last call's spikes), `on_layer` after
    every Conv2d / Linear call, and for every IF layer `on_neuron(name)` after it has put its output into `spikes`
    (held, so that no address is reused within a call: an input is spikes iff it is one of them, `_is_spikes`)."""
    from .neurons import IFNeuron

    def begin(module, inputs):
        spikes.clear()
        on_call()

    def neuron(name):
        after = on_neuron(name)

        def record(module, inputs, output):
            spikes.append(output)
            after(output)
        return record

    handles = [model.register_forward_pre_hook(begin)]
    handles += [m.register_forward_hook(on_layer) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    handles += [m.register_forward_hook(neuron(name)) for name, m in model.named_modules() if isinstance(m, IFNeuron)]
    try:
        yield
    finally:
        for h in handles:
            h.remove()
        spikes.clear()


def _is_spikes(x: torch.Tensor, spikes: list) -> bool:
    return any(x.data_ptr() == s.data_ptr() for s in spikes)


class OpCounter:
    """Accumulates dense ops, effective ACs and effective MACs over every Conv2d/Linear call while attached."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.totals = {"dense": 0.0, "acs": 0.0, "macs": 0.0}
        self._spikes: list[torch.Tensor] = []  # IF outputs of the current forward

    def _hook(self, module, inputs, output):
        x = inputs[0]
        dense, effective = layer_ops(module, x)
        self.totals["dense"] += dense
        self.totals["acs" if _is_spikes(x, self._spikes) else "macs"] += effective

    @contextmanager
    def counting(self):
        with _counting_hooks(self.model, self._spikes, lambda: None, self._hook, lambda name: lambda out: None):
            yield self

    def snapshot(self) -> dict[str, float]:
        return dict(self.totals)


def energy_pj(acs: float, macs: float, costs: dict = HOROWITZ_45NM_FP32) -> float:
    return acs * costs["ac_pj"] + macs * costs["mac_pj"]


def firing_rate(spike_count: torch.Tensor, steps: int) -> float:
    """Mean spikes per neuron per step."""
    return float(spike_count.float().mean()) / steps


def activation_sparsity(spikes: torch.Tensor) -> float:
    """Share of zero entries (NeuroBench: 0 = dense, 1 = all zero)."""
    return float((spikes == 0).float().mean())


def fanout(module: nn.Module, in_shape: tuple, weight: torch.Tensor) -> torch.Tensor:
    """Per input entry (shape in_shape, one image), the number of (output, weight) pairs it enters with a non-zero
    weight, i.e. the adjoint of the layer applied to ones: sum(conv(x_nz, w_nz)) = <x_nz, fanout> for any x."""
    w_nz = (weight != 0).to(torch.float64)
    if isinstance(module, nn.Linear):
        return w_nz.sum(0).expand(in_shape).contiguous()
    if bool(w_nz.all()):  # the usual case: (the entry's in-image taps) x (output channels it feeds), one channel
        taps = _conv_adjoint_of_ones(module, (1, *in_shape[1:]), w_nz.new_ones(1, 1, *weight.shape[2:]), groups=1)
        return (taps * (weight.shape[0] // module.groups)).expand(in_shape).contiguous()
    return _conv_adjoint_of_ones(module, in_shape, w_nz, module.groups)


EXACT_FLOAT32 = 2 ** 24  # float32 adds ones exactly below this count; above it the counts accumulate in float64


def _indicator(x: torch.Tensor) -> torch.Tensor:
    """1.0 where x is non-zero, 0.0 where it is +-0, in x's layout. Summing ones in float is several times faster
    on the CPU than comparing with 0 and summing booleans or count_nonzero (measured, benchmarks/README.md)."""
    return x.abs().sign_()


def _nonzero_per_step(x: torch.Tensor, k: int) -> torch.Tensor:
    """Non-zero entries of each of the k step blocks of x [k * n, ...], exact integers in float64 [k]. Each block
    is contiguous in memory in either layout, so each count is one full reduction without a copy."""
    n = x.shape[0] // k
    ind = _indicator(x)
    dtype = torch.float32 if ind[:n].numel() < EXACT_FLOAT32 else torch.float64
    return torch.stack([ind[i * n:(i + 1) * n].sum(dtype=dtype) for i in range(k)]).to(torch.float64)


def _nonzero_per_position(x: torch.Tensor, k: int) -> torch.Tensor:
    """x [k * n, C, H, W] -> float64 [k, H * W]: per step, the non-zero entries at each position over images and
    channels (exact integers). The channel sum runs along memory order (innermost for channels_last)."""
    n, c = x.shape[0] // k, x.shape[1]
    ind = _indicator(x)
    dtype = torch.float32 if n * c < EXACT_FLOAT32 else torch.float64
    if ind.stride(1) == 1 and c > 1:  # channels_last
        per_image = ind.permute(0, 2, 3, 1).sum(dim=3, dtype=dtype)
    else:
        per_image = ind.sum(dim=1, dtype=dtype)
    return per_image.view(k, n, -1).sum(dim=1, dtype=dtype).to(torch.float64)


def _fanout_plan(module: nn.Module, in_shape: tuple, weight: torch.Tensor) -> tuple[bool, torch.Tensor]:
    """(True, fan-out per position [H * W]) for a convolution whose weights are all non-zero, where every channel
    of a position has the same fan-out; else (False, `fanout` flattened). Either way integers in float64."""
    if isinstance(module, nn.Conv2d) and len(in_shape) == 3 and bool((weight != 0).all()):
        return True, fanout(module, in_shape, weight)[0].reshape(-1)
    return False, fanout(module, in_shape, weight).reshape(-1)


def _conv_adjoint_of_ones(conv: nn.Module, in_shape: tuple, weight: torch.Tensor, groups: int) -> torch.Tensor:
    """d sum(conv2d(x, weight)) / dx for one image of shape in_shape, with conv's stride, padding and dilation."""
    kw = dict(stride=conv.stride, padding=conv.padding, dilation=conv.dilation, groups=groups)
    with torch.enable_grad():
        x = torch.zeros((1, *in_shape), dtype=torch.float64, device=weight.device, requires_grad=True)
        F.conv2d(x, weight, **kw).sum().backward()
    return x.grad[0]


def dense_pairs(module: nn.Module, in_shape: tuple) -> float:
    """Every (input, weight) pair one call on one image touches (taps inside the padded image only)."""
    if isinstance(module, nn.Linear):
        return float(module.weight.numel() * (torch.Size(in_shape).numel() // in_shape[-1]))
    taps = _conv_adjoint_of_ones(module, (1, *in_shape[1:]),
                                 torch.ones(1, 1, *module.weight.shape[2:], dtype=torch.float64), groups=1)
    return float(taps.sum()) * in_shape[0] * (module.weight.shape[0] // module.groups)


class SynOpsMeter:
    """Per time step, while attached: effective ACs, effective MACs and dense pairs of every Conv2d / Linear call
    (summed over the batch), and the spikes emitted by every IF layer (SRP's silenced neurons emit none).

    The network runs in the engine's multi-step layout (inputs [k * rows, ...], k = the IF layers' `steps`); every
    network call appends k steps. Which inputs are spikes is decided by origin, as in OpCounter. Counts are float64,
    exact for integers up to 2^53."""

    def __init__(self, model: nn.Module):
        from .methods.cq.encoding import SpikeEncoder
        from .neurons import IFNeuron
        self.model = model
        self.neurons = [(name, m) for name, m in model.named_modules() if isinstance(m, IFNeuron)]
        self.encoders = {name for name, m in self.neurons if isinstance(m, SpikeEncoder)}
        self.layer_sizes: dict[str, int] = {}  # IF layer -> neurons per image
        self._fanouts: dict[tuple, tuple[torch.Tensor, float]] = {}
        self._chunks: list[dict] = []
        self._spikes: list[torch.Tensor] = []

    def _steps(self) -> int:
        return self.neurons[0][1].steps if self.neurons else 1

    def _begin(self):
        k = self._steps()
        z = torch.zeros(k, dtype=torch.float64)
        self._chunks.append({"k": k, "acs": z.clone(), "macs": z.clone(), "dense": z.clone(),
                             "spikes": {name: z.clone() for name, _ in self.neurons}})

    def _layer_hook(self, module, inputs, output):
        x = inputs[0]
        k = self._chunks[-1]["k"]
        key = (id(module), tuple(x.shape[1:]), module.weight._version)
        if key not in self._fanouts:
            self._fanouts[key] = (_fanout_plan(module, tuple(x.shape[1:]), module.weight),
                                  dense_pairs(module, tuple(x.shape[1:])))
        (per_position, fan), dense = self._fanouts[key]
        if per_position:
            # every weight non-zero: an entry's fan-out depends only on its position, so count the non-zero
            # entries per position over channels and images (integers), then weigh each position once
            effective = (_nonzero_per_position(x, k) @ fan).cpu()
        else:
            effective = (_indicator(x).reshape(x.shape[0], -1).to(torch.float64) @ fan).reshape(k, -1).sum(1).cpu()
        chunk = self._chunks[-1]
        chunk["acs" if _is_spikes(x, self._spikes) else "macs"] += effective
        chunk["dense"] += dense * (x.shape[0] // k)

    def _neuron_hook(self, name):
        def record(output):
            k = self._chunks[-1]["k"]
            self.layer_sizes[name] = output[0].numel()
            self._chunks[-1]["spikes"][name] += _nonzero_per_step(output, k).cpu()
        return record

    @contextmanager
    def attached(self):
        with _counting_hooks(self.model, self._spikes, self._begin, self._layer_hook, self._neuron_hook):
            yield self

    def per_step(self) -> dict:
        """{"acs", "macs", "dense": [steps], "spikes": {layer: [steps]}} over every step recorded (numpy)."""
        cat = lambda key: np.concatenate([c[key].numpy() for c in self._chunks]) if self._chunks else np.zeros(0)
        return {"acs": cat("acs"), "macs": cat("macs"), "dense": cat("dense"),
                "spikes": {name: np.concatenate([c["spikes"][name].numpy() for c in self._chunks])
                           if self._chunks else np.zeros(0) for name, _ in self.neurons}}

    def take(self) -> dict:
        """`per_step()` of the steps recorded since the last take, which are then forgotten. The fan-out maps stay
        cached, so one meter serves every batch of an evaluation."""
        steps = self.per_step()
        self._chunks = []
        return steps
