"""Input encoding, CQ's Algorithm 2 as reconstructed in docs/methods/cq.md, §3 [R] (catSNN's default
`SpikeDataset` [C]).

Each pixel value x in [0, 1] is a constant input current into a non-leaky integrate-and-fire neuron with threshold
1 and reset by subtraction. After t steps it has fired floor(t * x + v0) spikes (v0 its initial membrane), and
consecutive spikes are 1/x steps apart up to one step: a deterministic, evenly spaced rate code, not Poisson.

v0 = offset + guard (activation.py): with the default floor rounding, v0 = 2^-10, which makes a pixel on the 1/T grid
(x = fl32(k/T), often just below k/T) emit exactly k spikes in T steps; v0 = 0 loses a spike for about half of the
grid values (docs/methods/cq.md, §8.1). The membrane runs in float64, where the sum of T float32 pixels is exact.

Because the count after t steps depends only on t, the encoder needs no window length: one simulation to T_max
gives the encoding of every T <= T_max, which the cumulative readout (snnlib/engine) relies on.
"""
from __future__ import annotations

import torch

from .activation import GRID_GUARD
from ...neurons import IFNeuron


def encoded_count(x: torch.Tensor, t: int, v0: float = GRID_GUARD) -> torch.Tensor:
    """Closed form of the encoder's spike count after t steps: floor(t * clamp(x, 0, 1) + v0), in float64."""
    return torch.floor(t * x.to(torch.float64).clamp(0.0, 1.0) + v0)


def if_encode(x: torch.Tensor, T: int, v0: float = GRID_GUARD) -> torch.Tensor:
    """Algorithm 2: the spike trains [T, *x.shape] (values 0/1, dtype of x) of IF neurons driven by the pixels x."""
    current = x.to(torch.float64).clamp(0.0, 1.0)
    v = torch.full_like(current, v0)
    spikes = torch.empty((T, *x.shape), dtype=x.dtype, device=x.device)
    for t in range(T):
        v = v + current
        fire = v >= 1.0
        v = v - fire.to(v.dtype)
        spikes[t] = fire
    return spikes


class SpikeEncoder(IFNeuron):
    """First layer of a CQ SNN: fed the constant pixel image at every step, emits the spikes of `if_encode`.

    A threshold-1 IFNeuron with a float64 membrane, so the harness's simulation (which sets `steps` and resets the
    state of every IFNeuron) drives it like any other spiking layer."""

    def __init__(self, v0: float = GRID_GUARD):
        super().__init__(1.0, v0_fraction=v0)

    def input_current(self, x: torch.Tensor) -> torch.Tensor:
        """The pixels clamped to [0, 1], in float64 (the encoder's membrane dtype)."""
        return x.to(torch.float64).clamp(0.0, 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(self.input_current(x)).to(x.dtype)

    def extra_repr(self) -> str:
        return f"IF encoder, theta=1, v0={self.v0_fraction:.4g}, float64 membrane"
