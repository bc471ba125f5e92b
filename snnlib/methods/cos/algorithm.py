"""COS: calibrating offset spikes by shifting each neuron's initial membrane potential (Hao, Ding, Bu, Huang, Yu,
ICLR 2023), as the authors' released code does it; docs/methods/cos.md derives and discusses every step.

Per input sample and per neuron, layer by layer in network order. An IF layer (threshold theta, soft reset) receives
its whole input sequence I(1..T), computed from the *calibrated* outputs of the layers before it, and

  phase A  runs rho steps from v = v0_fraction * theta (theta / 2 after QCFS conversion), outputs discarded, and
           records per neuron: the spike count N, the residual v(rho), m_fire (smallest pre-reset potential m(t)
           among steps that spiked) and m_silent (largest m(t) among steps that did not);
  decide   the new initial potential, in units of theta (base = v0_fraction, 1/2 as released):
             v(rho) >= theta              -> base + max(1, RAISE_TARGET - m_silent)   (one spike too few)
             v(rho) <  0   and N >= 1     -> base - max(1, m_fire - LOWER_TARGET)     (one spike too many)
             otherwise                    -> base
  phase B  restarts at t = 1 from that potential on the same inputs I(1..T) and emits theta * s(t): this is what
           the next layer and the read-out see.

Shifting v0 by exactly theta moves exactly one spike and leaves the rest of the train and v(rho) unchanged (the
shift lemma, docs/methods/cos.md); the larger shifts happen only where a theta shift would change nothing.

Layer-major: the network is called once on the whole sequence; every IF layer runs phases A and B inside that call
(a forward pre-hook does phase A and sets the layer's state to the calibrated v0; the IF layer itself then runs
phase B exactly as in a plain simulation). Residual blocks need no special care: the neuron after an addition sees
both calibrated branches. Phase A needs rho input steps, so `cos_simulate` always simulates max(T, rho) steps.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, replace

import torch
from torch import nn

from ...neurons import IFNeuron
from ...engine import Plan, default_plan, reset, run_steps

# The released code's choices (docs/methods/cos.md, "Constants"), all in units of theta:
NONE_SENTINEL = 1000.0  # stands for "no such step": m_fire = +1000 when no step spiked, m_silent = -1000 when every
#                         step spiked. A saturated neuron (spiked at every step, v(rho) >= theta) thus gets
#                         v0 = 1/2 + 1001.001 and fires at every step of phase B.
LOWER_TARGET = 0.999    # lowering by more than 1 only when every spike had m > 1.999: the weakest spike's m -> 0.999
RAISE_TARGET = 1.001    # raising by more than 1 only when every silent m < 0.001: the strongest silent m -> 1.001


@dataclass
class PhaseA:
    """Per neuron, after rho steps from the uncalibrated v0 (potentials in absolute units, not units of theta)."""
    count: torch.Tensor      # N: spikes in the rho steps
    v_rho: torch.Tensor      # residual potential after step rho
    m_fire: torch.Tensor     # smallest pre-reset potential among spiking steps, +inf if none
    m_silent: torch.Tensor   # largest potential among silent steps, -inf if none


def phase_a(inputs: torch.Tensor, theta: torch.Tensor, v_start: torch.Tensor) -> PhaseA:
    """IF (soft reset, `if_step`) on inputs [rho, ...] from the potential v_start (broadcast to one step's shape)."""
    v = torch.broadcast_to(v_start, inputs.shape[1:]).clone()
    count = torch.zeros_like(v)
    m_fire = torch.full_like(v, math.inf)
    m_silent = torch.full_like(v, -math.inf)
    for x_t in inputs:
        m = v + x_t                        # the operations of neurons.if_step, keeping m
        s = (m >= theta).to(m.dtype)
        v = m - s * theta
        spiked = s.bool()
        count += s
        m_fire = torch.where(spiked, torch.minimum(m_fire, m), m_fire)
        m_silent = torch.where(spiked, m_silent, torch.maximum(m_silent, m))
    return PhaseA(count, v, m_fire, m_silent)


def initial_potential(stats: PhaseA, theta: torch.Tensor, base: float = 0.5) -> torch.Tensor:
    """The released decision rule: the new initial potential per neuron, in units of theta."""
    m_fire = torch.where(torch.isinf(stats.m_fire), torch.full_like(stats.m_fire, NONE_SENTINEL), stats.m_fire / theta)
    m_silent = torch.where(torch.isinf(stats.m_silent), torch.full_like(stats.m_silent, -NONE_SENTINEL),
                           stats.m_silent / theta)
    up = stats.v_rho >= theta                                  # offset -1 (or saturated)
    down = (stats.v_rho < 0) & (stats.count >= 1) & ~up        # offset >= +1; a silent neuron is never lowered
    raise_by = torch.clamp(RAISE_TARGET - m_silent, min=1.0)
    lower_by = torch.clamp(m_fire - LOWER_TARGET, min=1.0)
    v0 = torch.full_like(stats.v_rho, base)
    return torch.where(up, base + raise_by, torch.where(down, base - lower_by, v0))


def desired_count(input_sum: torch.Tensor, theta: torch.Tensor, rho: int) -> torch.Tensor:
    """N_hat: the QCFS activation at rho levels of the mean input, as a spike count, clip(floor(sum I/theta + 1/2),
    0, rho). The offset of a neuron that fired N times in those rho steps is N - N_hat."""
    return torch.clamp(torch.floor(input_sum / theta + 0.5), 0, rho)


# ---------------------------------------------------------------------------------------------------------------
# Layer-major simulation of a whole network

class _Calibration:
    """Forward pre-hooks on every IF layer: phase A on the first rho steps of the layer's input sequence, then the
    layer's state set to the decided v0 (so the layer's own forward is phase B). With `record`, a forward hook
    also notes, per call, the layer's decisions and offsets (one dict per IF layer call, in network order)."""

    def __init__(self, snn: nn.Module, rho: int, calibrate: bool, record: list | None):
        self.rho, self.calibrate, self.record = rho, calibrate, record
        self.handles = []
        for name, n in snn.named_modules():
            if isinstance(n, IFNeuron):
                self.handles.append(n.register_forward_pre_hook(self._pre_hook(name)))
                if record is not None:
                    self.handles.append(n.register_forward_hook(self._post_hook()))
        self._pending: dict | None = None

    def close(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles = []

    def _pre_hook(self, name: str):
        def hook(n: IFNeuron, inputs):
            x = inputs[0]
            steps = n.steps
            rows = n.rows if n.rows is not None else x.shape[0] // steps
            if self.rho > steps:
                raise ValueError(f"COS needs at least rho = {self.rho} steps per call, got {steps}")
            if x.shape[0] == steps * rows:
                seq = x.reshape(steps, rows, *x.shape[1:])[:self.rho]
            elif x.shape[0] == rows:   # the engine's constant input: the same current at every step
                seq = x.unsqueeze(0).expand(self.rho, *x.shape)
            else:
                raise ValueError(f"COS: IF input of {x.shape[0]} rows fits neither {steps} steps x {rows} rows "
                                 "nor a constant input")
            dtype = torch.promote_types(x.dtype, torch.float32)
            theta = n.theta.to(dtype)
            n.init_state(x, rows)                            # v = v0_fraction * theta, as in a plain run
            seq = seq.to(dtype)
            stats = phase_a(seq, theta, n.v)
            base = n.v0_fraction
            v0 = initial_potential(stats, theta, base) if self.calibrate else torch.full_like(stats.v_rho, base)
            if self.calibrate:
                n.v.copy_(v0 * theta)                        # base * theta: the bits of the plain initial state
            if self.record is not None:
                self._pending = {"layer": name, "theta": float(n.theta), "v0": v0, "n_pre": stats.count,
                                 "v_rho": stats.v_rho / theta,
                                 "n_hat": desired_count(seq.sum(0), theta, self.rho)}
        return hook

    def _post_hook(self):
        def hook(n: IFNeuron, inputs, output):
            entry, self._pending = self._pending, None
            steps = n.steps
            out = output.reshape(steps, output.shape[0] // steps, *output.shape[1:])[:self.rho]
            entry["n_run"] = (out != 0).sum(0).to(entry["n_pre"].dtype)
            entry["v_end"] = n.v / n.theta.to(n.v.dtype)
            self.record.append(entry)
        return hook


@contextlib.contextmanager
def calibrating(snn: nn.Module, rho: int, calibrate: bool = True, record: list | None = None):
    """While active, every call of `snn` in the multi-step layout runs COS in each IF layer (module docstring).
    calibrate=False measures phase A (for `record`) but leaves every v0 at its plain value."""
    if rho < 0:
        raise ValueError(f"rho must be >= 0, got {rho}")
    cal = _Calibration(snn, rho, calibrate, record)
    try:
        yield cal
    finally:
        cal.close()


@torch.no_grad()
def cos_simulate(snn: nn.Module, x: torch.Tensor, t_run: int, rho: int, *, calibrate: bool = True,
                 record: list | None = None, plan: Plan | None = None) -> torch.Tensor:
    """Per-step outputs [t_run, B, C] of the SNN under COS with rho calibration steps, on direct input x [B, ...].

    The prediction after T <= t_run steps is the argmax of the sum of the first T outputs; the latency of that
    read-out is rho + T (the calibration steps come first). Phase A needs rho input steps, so max(t_run, rho) steps
    are simulated, in one network call (layer-major). rho = 0 is the plain QCFS conversion, bit for bit.
    `record`: a list that receives one dict per IF layer call (layer, theta, and per neuron v0 and v_rho in units
    of theta, n_pre = phase-A spikes, n_hat = desired count, n_run = phase-B spikes over the first rho steps,
    v_end = the potential after the last simulated step, in units of theta).
    `plan`: the engine's device options (simulation.Plan); its chunk is always the whole run."""
    if t_run < 0 or rho < 0:
        raise ValueError(f"t_run and rho must be >= 0, got t_run={t_run}, rho={rho}")
    t_sim = max(t_run, rho)
    plan = replace(plan or default_plan(x.device), chunk=max(t_sim, 1), cuda_graphs=False)
    reset(snn)
    try:
        with calibrating(snn, rho, calibrate, record):
            out = run_steps(snn, x, t_sim, plan=plan)
    finally:
        reset(snn)
    return out[:t_run]
