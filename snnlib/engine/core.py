"""The multi-step engine: a converted SNN driven by a constant (direct-encoded) input, `chunk` time steps per
network call, with cumulative readout and branches (masked runs forked off the plain run). docs/engine.md.

  * Stateless layers (conv, linear, BN, pooling, residual adds) process a whole chunk of time in one call; only
    the IF recurrence loops over time (neurons.py).
  * Constant prefix: the layers in front of the first IF layer see the same input at every step, so they run
    once per simulation on the B images, and that IF layer broadcasts the result over time (`_EngineMode`).
  * Exact mode (the CPU default): a GEMM runs on the whole chunk only where a probe showed, for its shapes, that
    this returns bit for bit what per-step-sized calls return (`batch_invariant`); elsewhere it runs on slices of
    exactly B rows in 64-byte aligned memory, which are the per-step loop's own calls. Elementwise layers compute
    every element with the same float operations whatever the batch size. So on the CPU the engine reproduces the
    per-step reference loop (reference_loop.py) bit for bit in float32, for every chunk size. (Measured: MKL's
    sgemm on a few rows and oneDNN's convolution on one image change the last bit when the batch grows.)
  * Inexact mode (the GPU default): GEMMs on whole chunks. cuDNN and cuBLAS pick algorithms per shape, so layer
    outputs match the loop's to float rounding (relative ~1e-6), and a membrane that close to theta can fire one
    step earlier or later; predictions agree except for a few images in 10^4 (benchmarks/README.md).
  * Branches: a branch restarts every IF layer at v0 with a 0/1 output mask computed from that layer's state
    after `after` steps of the plain run. The plain run is simulated once, as far as any key needs it (shared
    prefix); then the masked runs follow one after another, or stacked along the batch axis as independent runs.
  * How to run (chunk size, stacking, compiled IF scan, CUDA graphs, precision) is a `Plan` (plans.py), fixed or
    measured per device and input (chunk="auto").
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, replace
from typing import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from ..neurons import if_neurons, if_scan_into
from .plans import Plan, start_plan, store_plan

GEMMS = (F.conv1d, F.conv2d, F.conv3d, F.linear)
# Pure functions of their first argument and fixed weights: applied to the constant input, the result is constant.
CONSTANT_SAFE = GEMMS + (F.batch_norm, F.avg_pool1d, F.avg_pool2d, F.avg_pool3d, F.adaptive_avg_pool1d,
                         F.adaptive_avg_pool2d, F.adaptive_avg_pool3d, torch.flatten, torch.Tensor.flatten,
                         torch.Tensor.reshape, torch.Tensor.view, torch.reshape)
IN_PLACE_DUNDERS = ("__setitem__", "__iadd__", "__isub__", "__imul__", "__itruediv__")
ALIGNMENT = 64  # bytes: PyTorch's CPU allocator aligns every tensor to this, so the per-step loop's GEMMs see it
PLAIN = ""  # the plain run's key in a Simulation


def reset(snn: nn.Module, clear_masks: bool = True) -> None:
    for n in if_neurons(snn):
        n.reset_state()
        if clear_masks:
            n.clear_mask()


def cumulative_predictions(step_outputs: torch.Tensor) -> torch.Tensor:
    """[T, B, C] per-step outputs -> [T, B] argmax of the running sum (prediction after 1..T steps)."""
    return step_outputs.cumsum(0).argmax(-1)


# ---------------------------------------------------------------------------------------------------------------
# The function mode: layers in front of the first IF layer run once; GEMMs on per-step-sized slices

def _key(a):
    if isinstance(a, torch.Tensor):
        return ("tensor", id(a))
    if isinstance(a, (list, tuple)):
        return tuple(_key(i) for i in a)
    try:
        hash(a)
        return a
    except TypeError:
        return ("repr", repr(a))


def _aligned(t: torch.Tensor) -> torch.Tensor:
    return t if t.is_contiguous() and t.data_ptr() % ALIGNMENT == 0 else t.clone(memory_format=torch.contiguous_format)


def _pure_call(func, args, kwargs) -> bool:
    if func is F.batch_norm:  # training-mode BN updates its running statistics
        return not kwargs.get("training", args[5] if len(args) > 5 else False)
    return True


class _EngineMode(TorchFunctionMode):
    """Active while the network runs a chunk.

    Constant prefix: a CONSTANT_SAFE call whose first argument is the simulation's input x (or a result obtained
    this way) returns its first result again, so the layers in front of the first IF layer run once per simulation,
    on B rows, as at every step of the per-step loop. Calls are matched by function and argument identity, and the
    arguments are held, so no id is reused while cached.
    slice_rows: a GEMM on more rows runs as slices of exactly this many rows (exact mode, module docstring).
    """

    def __init__(self, x: torch.Tensor | None, slice_rows: int | None):
        super().__init__()
        self.slice_rows = slice_rows
        self.constants: dict[int, torch.Tensor] = {} if x is None else {id(x): x}
        self.cache: dict[tuple, tuple[list, torch.Tensor]] = {}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        first = args[0] if args else None
        if self.constants and isinstance(first, torch.Tensor) and self.constants.get(id(first)) is first:
            if func in CONSTANT_SAFE and _pure_call(func, args, kwargs):
                key = (func, _key(args), _key(sorted(kwargs.items())))
                held = [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)]
                hit = self.cache.get(key)
                if hit is not None and len(hit[0]) == len(held) and all(a is b for a, b in zip(hit[0], held)):
                    return hit[1]
                t0 = time.perf_counter()
                out = self._call(func, args, kwargs)
                _UNTIMED[0] += time.perf_counter() - t0
                self.cache[key] = (held, out)
                self.constants[id(out)] = out
                return out
            name = getattr(func, "__name__", "")
            if (name.endswith("_") and not name.endswith("__")) or name in IN_PLACE_DUNDERS:
                raise RuntimeError(f"the network modifies a tensor computed from its input in place ({name}); the "
                                   "engine shares that tensor across time steps, so use an out-of-place layer")
        return self._call(func, args, kwargs)

    def _call(self, func, args, kwargs):
        rows = self.slice_rows
        if (rows and func in GEMMS and args and isinstance(args[0], torch.Tensor)
                and args[0].shape[0] > rows and args[0].shape[0] % rows == 0
                and not batch_invariant(func, args, kwargs, rows)):
            return _sliced(func, args, kwargs, rows)
        return func(*args, **kwargs)


def _sliced(func, args, kwargs, rows: int) -> torch.Tensor:
    """The GEMM as the per-step loop calls it: on `rows`-row slices, each in fresh-allocation-aligned memory."""
    return torch.cat([func(_aligned(part), *args[1:], **kwargs) for part in args[0].split(rows)])


def _layout(t) -> tuple | None:
    return (tuple(t.shape), t.stride(), t.dtype, t.device.type) if isinstance(t, torch.Tensor) else None


_BATCH_INVARIANT: dict[tuple, bool] = {}
# seconds spent on one-off work inside a chunk's call (the constant prefix, batch-invariance probes): the online
# tuner subtracts it, so that a chunk size is not charged for work the next call will not repeat
_UNTIMED = [0.0]


def batch_invariant(func, args, kwargs, rows: int) -> bool:
    """Whether this GEMM on the whole chunk returns, bit for bit, what it returns on `rows`-row slices.

    Which kernel (blocking, reduction order) MKL or oneDNN runs depends on the shapes, strides, dtype and thread
    count, never on the values, so this is measured once per such signature on a random probe and cached: a
    different summation order would show up in the last bits of nearly every output. Where it holds, the chunk
    runs as one call; elsewhere (measured: MKL's sgemm for a few rows, oneDNN's convolution for one image), on
    slices."""
    key = (func, _key([_layout(a) if isinstance(a, torch.Tensor) else a for a in args]),
           _key(sorted((k, _layout(v) if isinstance(v, torch.Tensor) else v) for k, v in kwargs.items())),
           rows, torch.get_num_threads())
    if key not in _BATCH_INVARIANT:
        t0 = time.perf_counter()
        with torch._C.DisableTorchFunction():
            g = torch.Generator(device=args[0].device).manual_seed(0)
            probe = torch.empty_like(args[0]).uniform_(-1.0, 1.0, generator=g)
            probe_args = (probe, *args[1:])
            _BATCH_INVARIANT[key] = torch.equal(func(*probe_args, **kwargs), _sliced(func, probe_args, kwargs, rows))
        _UNTIMED[0] += time.perf_counter() - t0
    return _BATCH_INVARIANT[key]


def gemm_batching() -> list[dict]:
    """What `batch_invariant` found so far: one row per GEMM signature (for benchmark reports)."""
    return [{"function": k[0].__name__, "input_shape": list(k[1][0][0]) if k[1] and k[1][0] else None,
             "per_step_rows": k[3], "threads": k[4], "batched": v} for k, v in _BATCH_INVARIANT.items()]


def _observed(snn: nn.Module) -> bool:
    """Hooks watch module calls (op counters, input recorders): then every module is called as in the plain
    multi-step loop, on the full [steps * B] input, and nothing is cached."""
    from torch.nn.modules import module as m
    if m._global_forward_hooks or m._global_forward_pre_hooks:
        return True
    return any(mod._forward_hooks or mod._forward_pre_hooks for mod in snn.modules())


def _precision(plan: Plan, device: torch.device):
    if plan.precision == "fp32":
        return contextlib.nullcontext()
    if plan.precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    if plan.precision == "tf32":
        if device.type != "cuda":
            raise ValueError("precision tf32 needs a CUDA device")
        return _tf32()
    raise ValueError(f"unknown precision {plan.precision!r}; valid: fp32, tf32, bf16")


@contextlib.contextmanager
def _tf32():
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


class CheckedScan:
    """The torch.compile'd `if_scan_into`, trusted per call signature only after it matched the eager function
    bit for bit (outputs, membrane, counts) on that signature's first real call, whose eager result is the one
    used. A mismatch or a compile error marks it `broken` (the engine then stops using it)."""

    def __init__(self):
        self.compiled = None
        self.seen: set[tuple] = set()
        self.broken: str | None = None

    def __call__(self, v, x, theta, emit, steps, constant, count):
        with torch._C.DisableTorchFunction():
            if self.broken:
                return if_scan_into(v, x, theta, emit, steps, constant, count)
            signature = (steps, constant, emit.numel() == 1, v.shape[0] == 1, count is None, x.dtype,
                         x.device.type)
            try:
                if self.compiled is None:
                    self.compiled = torch.compile(if_scan_into, dynamic=True)
                if signature in self.seen:
                    with torch._dynamo.config.patch(recompile_limit=64):  # a graph per signature, not per shape
                        return self.compiled(v, x, theta, emit, steps, constant, count)
                v_try = v.clone()
                count_try = None if count is None else count.clone()
                with torch._dynamo.config.patch(recompile_limit=64):
                    got = self.compiled(v_try, x, theta, emit, steps, constant, count_try)
            except Exception as error:  # no compiler, unsupported backend: the eager scan it is
                self.broken = f"{type(error).__name__}: {error}"
                return if_scan_into(v, x, theta, emit, steps, constant, count)
            expected = if_scan_into(v, x, theta, emit, steps, constant, count)
            if torch.equal(got, expected) and torch.equal(v_try, v) and (count is None or torch.equal(count_try,
                                                                                                     count)):
                self.seen.add(signature)
            else:
                self.broken = f"compiled IF scan differs from the eager one for {signature}"
            return expected


_SCANS: dict[str, CheckedScan] = {}


def fused_scan(device: torch.device) -> CheckedScan:
    return _SCANS.setdefault(device.type, CheckedScan())


# ---------------------------------------------------------------------------------------------------------------
# The engine

class _Engine:
    """One simulation of B images: plan, function mode, the neurons' layout attributes, CUDA graphs."""

    def __init__(self, snn: nn.Module, x: torch.Tensor, plan: Plan):
        self.snn, self.plan = snn, plan
        self.neurons = if_neurons(snn)
        self.observed = _observed(snn)
        self.graphs = plan.cuda_graphs and x.is_cuda and not self.observed
        if plan.channels_last and x.is_cuda and x.dim() == 4:
            snn.to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)
        self.x, self.batch = x, x.shape[0]
        self.mode = None if self.graphs else _EngineMode(None if self.observed else x,
                                                         self.batch if plan.exact else None)
        self.scan = fused_scan(x.device)
        self.set_fused(plan.fused_scan)
        self.graph_cache: dict[tuple, dict] = {}

    def set_fused(self, on: bool) -> None:
        for n in self.neurons:
            n.fused_scan = self.scan if on and not self.scan.broken else None

    def count_spikes(self, on: bool) -> None:
        for n in self.neurons:
            n.count_spikes = on or self.observed

    def close(self) -> None:
        for n in self.neurons:
            n.steps, n.rows, n.fused_scan, n.count_spikes = 1, None, None, True

    def call(self, k: int, rows: int) -> torch.Tensor:
        """k steps of `rows` rows (B images x stacked runs) through the network -> [k, rows, C]."""
        for n in self.neurons:
            n.steps, n.rows = k, (None if self.observed else rows)
        x = self.x
        if self.observed:  # the multi-step layout every hook expects: [k * rows, ...]
            x = x.unsqueeze(0).expand(k * rows // self.batch, *x.shape).reshape(k * rows, *x.shape[1:])
        if self.graphs:
            out = self._graph_call(k, rows, x)
        else:
            with self.mode or contextlib.nullcontext(), _precision(self.plan, x.device):
                out = self.snn(x)
        if out.shape[0] == self.batch and k * rows != self.batch:  # no IF layer on the way: constant output
            out = out.unsqueeze(0).expand(k * rows // self.batch, *out.shape)
        return out.reshape(k, rows, -1)

    def run(self, n_steps: int, rows: int, tuner=None) -> torch.Tensor:
        """Advance all neurons n_steps steps -> [n_steps, rows, C]. A tuner (plans.py) picks each call's chunk size
        and scan, and is told how long the call took."""
        outs, done = [], 0
        while done < n_steps:
            if tuner is None:
                k, fused, trial = min(self.plan.chunk, n_steps - done), self.plan.fused_scan, None
            else:
                k, fused, trial = tuner.next(n_steps - done)
            self.set_fused(fused)
            untimed, t0 = _UNTIMED[0], time.perf_counter()
            outs.append(self.call(k, rows))
            if tuner is not None:  # one-off work in this call (constant prefix, probes) is not charged to it
                seconds = time.perf_counter() - t0 - (_UNTIMED[0] - untimed)
                tuner.record(trial, seconds / (k * rows), self.scan.broken)
            done += k
        return torch.cat(outs) if outs else self.x.new_zeros(0, rows, 0)

    def restart(self, rows: int, masks: list[torch.Tensor] | None) -> None:
        """Every neuron back to v0 for a new phase of `rows` rows, with these output masks (or none)."""
        for i, n in enumerate(self.neurons):
            mask = None if masks is None else masks[i]
            if self.graphs and n.v is not None and n.v.shape[0] == rows:
                n.init_state(n.v, rows)  # in place: captured graphs keep their addresses
                if mask is None or n.mask is None or n.mask.shape != mask.shape:
                    n.mask = None if mask is None else mask.clone()
                else:
                    n.mask.copy_(mask)
            else:
                n.reset_state()
                n.mask = mask

    # CUDA graphs: one per (k, rows, masked), replayed while the neurons' state is updated in place
    def _graph_call(self, k: int, rows: int, x: torch.Tensor) -> torch.Tensor:
        masked = any(n.mask is not None for n in self.neurons)
        key = (k, rows, masked)
        state = [t.data_ptr() for n in self.neurons for t in (n.v, n.spike_count, n.mask) if t is not None]
        entry = self.graph_cache.get(key)
        if entry is not None and entry["state"] == state:
            entry["x"].copy_(x)
            entry["graph"].replay()
            return entry["out"].clone()
        if any(n.v is None for n in self.neurons) or entry is not None:
            # first chunk of this layout (it allocates the state), or a stale graph: eager, on a side stream, which
            # also warms up the kernels the capture will record
            self.graph_cache.pop(key, None)
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side), _precision(self.plan, x.device):
                out = self.snn(x)
            torch.cuda.current_stream().wait_stream(side)
            return out
        static_x = x.clone()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph), _precision(self.plan, x.device):
            static_out = self.snn(static_x)
        self.graph_cache[key] = {"graph": graph, "x": static_x, "out": static_out, "state": state}
        graph.replay()
        return static_out.clone()


# ---------------------------------------------------------------------------------------------------------------
# Choosing the plan by measurement


# ---------------------------------------------------------------------------------------------------------------
# The public entry points

@dataclass(frozen=True)
class Branch:
    """A masked run forked off the plain run: after `after` plain steps (from v0), `mask(v, theta, spike_count)`
    of every IF layer gives its 0/1 output mask (1 keeps a neuron's spikes, 0 silences it; stored as bool);
    then every layer restarts at v0 and the masked network runs. `spike_count` (spikes per neuron in those
    `after` steps) is passed only where `counts` is set, else None: counting costs a memory pass per step."""
    after: int
    mask: Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]
    counts: bool = False


class Simulation(dict):
    """Per-step outputs [t_run, B, C] by key: PLAIN ("") for the plain run, a branch's name for its masked run.

    `steps`: where hooks observe the network (an operation meter, an input recorder), the indices, into the time
    steps the network was called for during the simulate call (in call order), of the steps each key's output
    depended on: the plain run's first t_run steps, or a branch's `after` plain steps and its own masked run.
    Selecting a meter's per-step counts by `steps[key]` gives what a run of that key alone would have counted.
    None where nothing observes the network (then steps may be shared, stacked or skipped)."""

    def __init__(self, *args, steps: dict[str, list[int]] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.steps = steps


@torch.no_grad()
def run_steps(snn: nn.Module, x: torch.Tensor, n_steps: int, chunk: int | str = 8,
              plan: Plan | None = None) -> torch.Tensor:
    """Advance the SNN `n_steps` steps on constant input x [B, ...]; returns per-step outputs [n_steps, B, C].
    The neurons keep their state (and masks) between calls, as in the per-step loop."""
    plan, tuner = start_plan(snn, x, n_steps, 1, chunk, plan, may_trial=False)
    engine = _Engine(snn, x, plan)
    try:
        out = engine.run(n_steps, x.shape[0], tuner)
    finally:
        engine.close()
    if tuner is not None and tuner.done:
        store_plan(snn, x, 1, tuner.plan(plan))
    return out


def _check_branches(branches: Mapping[str, Branch] | None, plain: bool) -> dict[str, Branch]:
    branches = dict(branches or {})
    for key, branch in branches.items():
        if not isinstance(key, str) or key == PLAIN:
            raise ValueError(f"branch names must be non-empty strings ({PLAIN!r} is the plain run), got {key!r}")
        if not isinstance(branch, Branch):
            raise TypeError(f"branch {key!r} is a {type(branch).__name__}, not a Branch")
        if int(branch.after) != branch.after or branch.after < 1:
            raise ValueError(f"branch {key!r}: `after` must be a whole number of steps >= 1, got {branch.after!r}")
    if not plain and not branches:
        raise ValueError("nothing to simulate: plain=False and no branches")
    return branches


@torch.no_grad()
def simulate(snn: nn.Module, x: torch.Tensor, t_run: int, branches: Mapping[str, Branch] | None = None,
             plain: bool = True, chunk: int | str = 8, plan: Plan | None = None) -> Simulation:
    """Per-step outputs [t_run, B, C] of the plain run (key PLAIN, if `plain`) and of every branch, from v0.

    The plain run is simulated once, to t_run (if `plain`) or to the latest fork if that is later; at each fork
    the branches forking there take their masks from the neurons' state. Then each branch runs t_run masked steps
    from v0, alone or stacked with the others (plan.batch_runs), in the mapping's order. Each key's output equals a
    separate simulation of that key alone (bit for bit on the CPU). The network is left reset, without masks.
    `chunk`: time steps per network call, or "auto" (measured, plans.py); `plan` overrides both."""
    branches = _check_branches(branches, plain)
    names = list(branches)
    afters = [int(branches[k].after) for k in names]
    B = x.shape[0]
    t_plain = max(([t_run] if plain else []) + afters)
    plan, tuner = start_plan(snn, x, t_plain, len(names), chunk, plan, may_trial=True)
    results = Simulation()
    masks: dict[str, list[torch.Tensor]] = {}
    engine = _Engine(snn, x, plan)
    stacking: dict[bool, float] = {}
    counting = max((int(b.after) for b in branches.values() if b.counts), default=0)
    called = 0  # time steps the network has been called for so far (the `steps` bookkeeping)
    masked_steps: dict[str, list[int]] = {}
    try:
        engine.restart(B, None)
        outs, done = [], 0
        for stop in sorted(set(afters + [t_plain])):
            engine.count_spikes(stop <= counting)  # only where a mask reads the counts
            outs.append(engine.run(stop - done, B, tuner))
            done = called = stop
            for key in names:
                branch = branches[key]
                if branch.after == stop:  # fork: this branch's masks, kept as bool (applied as 0/1 factors)
                    masks[key] = [branch.mask(n.v, n.theta, n.spike_count if branch.counts else None).bool()
                                  for n in engine.neurons]
        if plain:
            results[PLAIN] = torch.cat(outs)[:t_run]
        engine.count_spikes(False)
        ready = not engine.observed and (tuner is None or tuner.done)
        measure = chunk == "auto" and plan.batch_runs is None and len(names) > 2 and ready
        if measure:  # stacked or one after another: time one run alone, then the others stacked
            groups = [names[:1], names[1:]]
        elif plan.batch_runs and len(names) > 1 and ready:
            groups = [names]
        else:
            groups = [[k] for k in names]
        for group in groups:
            rows = B * len(group)
            engine.restart(rows, [torch.cat([masks[k][i] for k in group]) for i in range(len(engine.neurons))])
            t0 = time.perf_counter()
            out = engine.run(t_run, rows, tuner).reshape(t_run, len(group), B, -1)
            stacking[len(group) > 1] = (time.perf_counter() - t0) / (rows * max(t_run, 1))
            for j, key in enumerate(group):
                results[key] = out[:, j]
                masked_steps[key] = list(range(called, called + t_run))  # observed: one group per branch
            called += t_run
    finally:
        engine.close()
        reset(snn)
    if engine.observed:
        results.steps = {key: (list(range(t_run)) if key == PLAIN
                               else list(range(int(branches[key].after))) + masked_steps[key])
                         for key in results}
    if chunk == "auto" and (tuner is None or tuner.done):
        tuned = tuner.plan(plan) if tuner is not None else plan
        if measure:
            tuned = replace(tuned, batch_runs=stacking[True] < stacking[False])
        store_plan(snn, x, len(names), tuned)
    return results
