"""The reference: the papers' per-step loop, written independently of the engine.

The whole network is called once per time step on the B images, on a copy whose IF layers are `_LoopIF`: its own
membrane, one `if_step` per call. It shares no code with the engine beyond `if_step` (and the neurons' own
`input_current`), so the engine's tests compare against it bit for bit on the CPU (tests/test_engine.py).
"""
from __future__ import annotations

import copy
from typing import Callable

import torch
from torch import nn

from ..neurons import IFNeuron, if_step

Mask = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


class _LoopIF(nn.Module):
    """One IF layer of the papers' code: membrane from v0, one `if_step` per call, spike count, optional mask."""

    def __init__(self, neuron: IFNeuron):
        super().__init__()
        self.input_current = neuron.input_current
        self.theta, self.v0_fraction = neuron.theta.clone(), neuron.v0_fraction
        self.v = self.count = self.mask = None

    def forward(self, x):
        dtype = x.dtype
        x = self.input_current(x)
        theta = self.theta.to(x.dtype)
        if self.v is None:
            self.v = torch.full_like(x, self.v0_fraction) * theta
            self.count = torch.zeros_like(x)
        self.v, s = if_step(self.v, x, theta)
        self.count = self.count + s
        out = s * theta if self.mask is None else s * theta * self.mask
        return out.to(dtype)


@torch.no_grad()
def per_step_loop(snn: nn.Module, x: torch.Tensor, t_run: int, prerun: int = 0, mask: Mask | None = None
                  ) -> torch.Tensor:
    """The network called once per time step on x [B, ...] -> per-step outputs [t_run, B, C].

    With prerun > 0: `prerun` steps from v0, then every IF layer's output mask = mask(v, theta, spike_count) of
    its state, a restart at v0 and t_run masked steps (the engine's `Branch(after=prerun, mask)`)."""
    if (prerun > 0) != (mask is not None):
        raise ValueError(f"a mask needs a pre-run and a pre-run needs a mask (prerun={prerun}, mask={mask})")
    net = copy.deepcopy(snn)

    def swap(module):
        for name, child in module.named_children():
            if isinstance(child, IFNeuron):
                setattr(module, name, _LoopIF(child))
            else:
                swap(child)
    swap(net)
    layers = [m for m in net.modules() if isinstance(m, _LoopIF)]
    if prerun > 0:
        for _ in range(prerun):
            net(x)
        for n in layers:
            n.mask = mask(n.v, n.theta, n.count)
            n.v = n.count = None
    return torch.stack([net(x) for _ in range(t_run)]) if t_run else x.new_zeros(0, x.shape[0], 0)
