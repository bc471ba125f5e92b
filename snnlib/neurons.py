"""Integrate-and-fire neurons with reset by subtraction (docs/methods/qcfs.md, §4; docs/methods/cq.md, §4.1).

    m(t) = v(t-1) + x(t);   s(t) = 1[m(t) >= theta];   v(t) = m(t) - s(t) * theta;   out(t) = s(t) * theta

The layer runs in multi-step mode: its input holds `steps` consecutive time steps stacked along the batch axis
([steps * rows, ...], step-major), which lets every stateless layer around it process a whole chunk of time in one
call. Only this recurrence loops over time. With steps = 1 it is the plain per-step loop of the papers' code.

Two more layouts, set up by the simulation engine (snnlib/engine):
  constant input  an input with fewer rows than the state ([B, ...] while the state has `rows` = R * B rows) is
                  the same at every step of the chunk and in each of the R stacked runs. With direct encoding the
                  first spiking layer's input depends only on the image, so the engine computes it once and this
                  layer broadcasts it instead of recomputing it at every step;
  stacked runs    `rows` = R * B holds R independent simulations of the same B images (the masked runs of R
                  branches, e.g. SRP for R values of tau), each with its own rows of `mask`.

Every layout does the float operations of `if_step`, in the same order, on the same numbers, so all give the same
bits. The emitted value s * (theta * mask) equals (s * theta) * mask exactly: both are theta or +0.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn


def if_step(v: torch.Tensor, x: torch.Tensor, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of a soft-reset IF neuron: returns (new membrane potential, spikes in {0, 1})."""
    m = v + x
    s = (m >= theta).to(m.dtype)
    return m - s * theta, s


def _runs_view(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """v [R * B, ...] viewed as [R, B, ...], so that a constant input x [B, ...] broadcasts over the R runs."""
    return v if v.shape[0] == x.shape[0] else v.view(v.shape[0] // x.shape[0], *x.shape)


def if_scan_(v: torch.Tensor, x: torch.Tensor, theta: torch.Tensor, emit: torch.Tensor, out: torch.Tensor,
             count: torch.Tensor | None, constant: bool) -> None:
    """`out.shape[0]` steps of `if_step` in place, four memory passes per step: v [rows, ...] advances, out[t] =
    s(t) * emit (emit = theta, or theta * mask), count += s(t) unless None. x is [steps, rows, ...], or [B, ...]
    with rows = R * B when it is constant over time."""
    vx = _runs_view(v, x) if constant else v
    minus_theta = -theta
    for t in range(out.shape[0]):
        s = out[t]
        vx.add_(x if constant else x[t])   # m = v + x
        torch.ge(v, theta, out=s)          # s in {0., 1.}
        v.addcmul_(s, minus_theta)         # m - s * theta (s * theta is exact: 0 or theta)
        if count is not None:
            count.add_(s)
        s.mul_(emit)


def if_scan(v: torch.Tensor, x: torch.Tensor, theta: torch.Tensor, emit: torch.Tensor, steps: int,
            constant: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Functional `if_scan_` (the same operations) on flat views, for torch.compile to fuse the chunk into one
    kernel that keeps v in registers. v [R, L] (R stacked runs of L neurons x images); x [steps, 1, L] per step,
    or [L] when constant (broadcast over steps and runs); emit [1] or [R, L].
    Returns (out [steps, R, L], new v, spike count over the chunk)."""
    outs = []
    count = torch.zeros_like(v)
    for t in range(steps):
        m = v + (x if constant else x[t])
        s = (m >= theta).to(m.dtype)
        v = m - s * theta
        count = count + s
        outs.append(s * emit)
    return torch.stack(outs), v, count


def if_scan_into(v: torch.Tensor, x: torch.Tensor, theta: torch.Tensor, emit: torch.Tensor, steps: int,
                 constant: bool, count: torch.Tensor | None) -> torch.Tensor:
    """`if_scan` that updates v (and count, unless None) in place and returns out: compiled, the updates are
    stores of the same fused kernel instead of extra passes."""
    out, v_new, spikes = if_scan(v, x, theta, emit, steps, constant)
    v.copy_(v_new)
    if count is not None:
        count.add_(spikes)
    return out


def _flat(t: torch.Tensor) -> torch.Tensor:
    """1-D view of a dense tensor in memory order (NHWC order for channels_last)."""
    return (t.permute(0, 2, 3, 1) if _is_channels_last(t) else t).reshape(-1)


def _unflat(flat: torch.Tensor, shape: tuple, channels_last: bool) -> torch.Tensor:
    if channels_last:
        n, c, h, w = shape
        return flat.view(n, h, w, c).permute(0, 3, 1, 2)
    return flat.view(shape)


class IFNeuron(nn.Module):
    """A layer of IF neurons sharing one threshold `theta`, starting at v0 = v0_fraction * theta.

    State (reset by `reset_state`): membrane `v` and per-neuron `spike_count` since the last reset.
    `mask` (kept across resets, cleared by `clear_mask`) multiplies the emitted spikes: SRP's silencing.
    Set by the engine: `steps` and `rows` (module docstring; rows None = input.shape[0] // steps), `count_spikes`
    (False where nobody reads the counts) and `fused_scan` (a compiled `if_scan_into`).
    """

    def __init__(self, theta: float | torch.Tensor, v0_fraction: float = 0.5):
        super().__init__()
        theta = torch.as_tensor(theta, dtype=torch.float32).reshape(1)
        if not torch.all(theta > 0):
            raise ValueError(f"IF threshold must be positive, got {theta.item()}: a trained QCFS lambda went "
                             "non-positive (docs/methods/qcfs.md, §10.3; QCFS issue #10); retrain with a larger "
                             "lambda_init")
        self.register_buffer("theta", theta)
        self.v0_fraction = float(v0_fraction)
        self.steps = 1
        self.rows: int | None = None
        self.count_spikes = True
        self.fused_scan: Callable | None = None
        self.v: torch.Tensor | None = None
        self.spike_count: torch.Tensor | None = None
        self.mask: torch.Tensor | None = None
        self._emit: tuple | None = None

    def input_current(self, x: torch.Tensor) -> torch.Tensor:
        """The current this layer integrates, given its input: the input itself. An input encoder overrides it
        (SpikeEncoder); the reference loop (engine/reference_loop.py) calls it too, so it needs no list of them."""
        return x

    def reset_state(self) -> None:
        self.v = None
        self.spike_count = None

    def clear_mask(self) -> None:
        self.mask = None
        self._emit = None

    def init_state(self, like: torch.Tensor, rows: int) -> None:
        """v = v0, no spikes, for `rows` rows shaped like one row of `like`, in its memory format. The membrane is
        at least float32 (under bf16 autocast the currents are bf16, the potential is not). An existing state of
        that shape is overwritten in place, since CUDA graphs hold its address."""
        dtype = torch.promote_types(like.dtype, torch.float32)
        shape = (rows, *like.shape[1:])
        if self.v is not None and self.v.shape == shape and self.v.dtype == dtype:
            self.v.fill_(self.v0_fraction).mul_(self.theta.to(dtype))
            self.spike_count.zero_()
            return
        fmt = torch.channels_last if _is_channels_last(like) else torch.contiguous_format
        self.v = torch.empty(shape, dtype=dtype, device=like.device, memory_format=fmt)
        self.v.fill_(self.v0_fraction).mul_(self.theta.to(dtype))
        self.spike_count = torch.zeros_like(self.v)

    def _emit_factor(self, theta: torch.Tensor) -> torch.Tensor:
        """theta, or theta * mask under SRP (cached; recomputed when the mask changes or a CUDA graph records)."""
        if self.mask is None:
            return theta
        capturing = self.mask.is_cuda and torch.cuda.is_current_stream_capturing()
        cached = self._emit
        if (capturing or cached is None or cached[0] is not self.mask or cached[2] != self.mask._version
                or cached[1].dtype != theta.dtype):
            self._emit = cached = (self.mask, theta * self.mask, self.mask._version)
        return cached[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # elementwise work on this layer's own state: nothing for a function mode to cache or slice (the engine's
        # would only add its Python overhead to each of the dozens of tensor calls below)
        with torch._C.DisableTorchFunction():
            return self._forward(x)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        steps = self.steps
        rows = self.rows if self.rows is not None else x.shape[0] // steps
        constant = x.shape[0] != steps * rows
        if constant and (rows % x.shape[0] or x.shape[0] > rows):
            raise ValueError(f"IF input of {x.shape[0]} rows fits neither {steps} steps x {rows} rows nor a "
                             f"constant input broadcast to {rows} rows")
        if self.v is None:
            self.init_state(x, rows)
        theta = self.theta.to(self.v.dtype)
        emit = self._emit_factor(theta)
        if self.fused_scan is not None:
            return self._fused_forward(x, theta, emit, steps, rows, constant)
        # allocated flat in the membrane's memory format (channels_last on a GPU), then viewed step-major
        fmt = torch.channels_last if _is_channels_last(self.v) else torch.contiguous_format
        flat = torch.empty((steps * rows, *self.v.shape[1:]), dtype=self.v.dtype, device=x.device, memory_format=fmt)
        xs = x if constant else x.reshape(steps, rows, *x.shape[1:])
        if_scan_(self.v, xs, theta, emit, flat.view(steps, *self.v.shape),
                 self.spike_count if self.count_spikes else None, constant)
        return flat

    def _fused_forward(self, x, theta, emit, steps: int, rows: int, constant: bool) -> torch.Tensor:
        """The chunk through `fused_scan` on flat views in the membrane's memory order."""
        channels_last = _is_channels_last(self.v)
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        if x.dim() == 4 and _is_channels_last(x) != channels_last:
            x = x.contiguous(memory_format=fmt)
        if emit.numel() > 1 and emit.dim() == 4 and _is_channels_last(emit) != channels_last:
            emit = emit.contiguous(memory_format=fmt)
        runs = rows // x.shape[0] if constant else 1
        v = _flat(self.v).view(runs, -1)
        xs = _flat(x.contiguous() if x.dim() != 4 else x)
        xs = xs if constant else xs.view(steps, 1, -1)
        emit = emit if emit.numel() == 1 else _flat(emit).view(v.shape)
        count = _flat(self.spike_count).view(v.shape) if self.count_spikes else None
        out = self.fused_scan(v, xs, theta, emit, steps, constant, count)
        return _unflat(out.reshape(-1), (steps * rows, *self.v.shape[1:]), channels_last)

    def extra_repr(self) -> str:
        return f"theta={self.theta.item():.4g}, v0={self.v0_fraction}*theta"


def _is_channels_last(t: torch.Tensor) -> bool:
    return t.dim() == 4 and not t.is_contiguous() and t.is_contiguous(memory_format=torch.channels_last)


def if_neurons(model: nn.Module) -> list[IFNeuron]:
    return [m for m in model.modules() if isinstance(m, IFNeuron)]
