"""Time-stepped simulation of a converted SNN with cumulative readout, and SRP's two-phase run.

The input is analog and repeated every step (direct encoding, spec srp_qcfs.md §2). Outputs of the final
(non-spiking) layer are summed over time; the prediction after t steps is the argmax of that running sum, so one
simulation to T_max yields the accuracy at every T <= T_max.

`chunk` sets how many time steps go through the network per call (see neurons.py); chunk = 1 is the per-step loop.
Larger chunks do the same arithmetic, but a GEMM over a larger batch may block differently on the CPU, so outputs
can differ in the last float bit from the per-step loop.
"""
from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from .neurons import IFNeuron, if_neurons
from .srp import residual_mask


def reset(snn: nn.Module, clear_masks: bool = True) -> None:
    for n in if_neurons(snn):
        n.reset_state()
        if clear_masks:
            n.clear_mask()


@torch.no_grad()
def run_steps(snn: nn.Module, x: torch.Tensor, n_steps: int, chunk: int = 8) -> torch.Tensor:
    """Advance the SNN `n_steps` steps on constant input x [B, ...]; returns per-step outputs [n_steps, B, C]."""
    neurons = if_neurons(snn)
    outs = []
    for start in range(0, n_steps, chunk):
        k = min(chunk, n_steps - start)
        for n in neurons:
            n.steps = k
        xin = x.unsqueeze(0).expand(k, *x.shape).reshape(k * x.shape[0], *x.shape[1:])
        outs.append(snn(xin).reshape(k, x.shape[0], -1))
    for n in neurons:
        n.steps = 1
    return torch.cat(outs) if outs else x.new_zeros(0, x.shape[0], 0)


def cumulative_predictions(step_outputs: torch.Tensor) -> torch.Tensor:
    """[T, B, C] per-step outputs -> [T, B] argmax of the running sum (prediction after 1..T steps)."""
    return step_outputs.cumsum(0).argmax(-1)


def apply_srp_masks(neurons: list[IFNeuron], rule: str) -> None:
    """Turn the neurons' current state (end of a pre-run) into SRP masks and restart them at v0."""
    for n in neurons:
        n.mask = residual_mask(n.v, n.theta, n.spike_count, rule)
        n.reset_state()


@torch.no_grad()
def simulate(snn: nn.Module, x: torch.Tensor, t_run: int, taus: Iterable[int] = (0,), rule: str = "reference",
             chunk: int = 8) -> dict[int, torch.Tensor]:
    """Per-step outputs [t_run, B, C] of plain QCFS (tau = 0) and of SRP for every tau > 0.

    SRP's pre-run of tau steps is exactly the first tau steps of the plain run, so the plain run is simulated once
    and its state at each tau becomes that tau's masks (by re-running the prefix: cheap next to t_run)."""
    taus = sorted(set(int(t) for t in taus))
    neurons = if_neurons(snn)
    results = {}
    if 0 in taus:
        reset(snn)
        results[0] = run_steps(snn, x, t_run, chunk)
    for tau in (t for t in taus if t > 0):
        reset(snn)
        run_steps(snn, x, tau, chunk)
        apply_srp_masks(neurons, rule)
        results[tau] = run_steps(snn, x, t_run, chunk)
    reset(snn)
    return results
