"""Integrate-and-fire neurons with reset by subtraction (spec srp_qcfs.md §2.1, cq.md §4.1).

    m(t) = v(t-1) + x(t);   s(t) = 1[m(t) >= theta];   v(t) = m(t) - s(t) * theta;   out(t) = s(t) * theta

The layer runs in multi-step mode: its input holds `steps` consecutive time steps stacked along the batch axis
([steps * B, ...], step-major), which lets every stateless layer around it process a whole chunk of time in one
call. Only this recurrence loops over time. With steps = 1 it is the plain per-step loop of the papers' code.
"""
from __future__ import annotations

import torch
from torch import nn


def if_step(v: torch.Tensor, x: torch.Tensor, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of a soft-reset IF neuron: returns (new membrane potential, spikes in {0, 1})."""
    m = v + x
    s = (m >= theta).to(m.dtype)
    return m - s * theta, s


class IFNeuron(nn.Module):
    """A layer of IF neurons sharing one threshold `theta`, starting at v0 = v0_fraction * theta.

    State (reset by `reset_state`): membrane `v` and per-neuron `spike_count` since the last reset.
    `mask` (kept across resets, cleared by `clear_mask`) multiplies the emitted spikes: SRP's silencing.
    """

    def __init__(self, theta: float | torch.Tensor, v0_fraction: float = 0.5):
        super().__init__()
        theta = torch.as_tensor(theta, dtype=torch.float32).reshape(1)
        if not torch.all(theta > 0):
            raise ValueError(f"IF threshold must be positive, got {theta.item()}: a trained QCFS lambda went "
                             "non-positive (spec srp_qcfs.md §6, QCFS issue #10); retrain with a larger lambda_init")
        self.register_buffer("theta", theta)
        self.v0_fraction = float(v0_fraction)
        self.steps = 1
        self.v: torch.Tensor | None = None
        self.spike_count: torch.Tensor | None = None
        self.mask: torch.Tensor | None = None

    def reset_state(self) -> None:
        self.v = None
        self.spike_count = None

    def clear_mask(self) -> None:
        self.mask = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xs = x.reshape(self.steps, x.shape[0] // self.steps, *x.shape[1:])
        theta = self.theta.to(x.dtype)
        if self.v is None:
            self.v = torch.full_like(xs[0], self.v0_fraction) * theta
            self.spike_count = torch.zeros_like(xs[0])
        out = torch.empty_like(xs)
        for t in range(self.steps):
            self.v, s = if_step(self.v, xs[t], theta)
            self.spike_count += s
            out[t] = s * theta if self.mask is None else s * theta * self.mask
        return out.reshape(x.shape)

    def extra_repr(self) -> str:
        return f"theta={self.theta.item():.4g}, v0={self.v0_fraction}*theta"


def if_neurons(model: nn.Module) -> list[IFNeuron]:
    return [m for m in model.modules() if isinstance(m, IFNeuron)]
