"""Time-stepped simulation of a converted SNN with cumulative readout, and SRP's two-phase run.

The input is analog and repeated every step (direct encoding, spec srp_qcfs.md §2). Outputs of the final
(non-spiking) layer are summed over time; the prediction after t steps is the argmax of that running sum, so one
simulation to T_max yields the accuracy at every T <= T_max.

The engine, layer by layer over chunks of time
  * `chunk` time steps go through the network in one call: every stateless layer (conv, linear, BN, pooling,
    residual add) processes the whole chunk at once; only the IF recurrence loops over time (neurons.py).
  * Direct input makes the first spiking layer's input a function of the image alone: the layers in front of it
    (conv + BN) run once per simulation, on the B images, and the IF layer broadcasts the result over time.
  * SRP's pre-run of tau steps is exactly the first tau steps of the plain QCFS run, so `simulate` runs the plain
    run once, turns its state after tau steps into that tau's masks for every tau asked for, then runs the masked
    phases (one after another, or stacked along the batch axis as independent runs).
  * chunk="auto" chooses the chunk size, the compiled IF scan and the stacking per device by measuring: on the
    CPU on the simulation's own steps (every choice gives the same bits, so nothing is computed twice); on a GPU
    on short trial runs, where an option is only kept if it reproduces the trial's reference output.

Exactness. On the CPU the engine reproduces the papers' per-step loop (`per_step_loop`) bit for bit in float32,
for every chunk size, with or without stacked runs and the compiled scan. Elementwise layers (BN in eval mode,
pooling, adds, the IF update) compute each element with the same float operations whatever the batch size. GEMMs
may not: which kernel MKL or oneDNN runs (blocking, summation order) depends on the number of rows. Measured here:
MKL's sgemm on a few rows (B <= 8) and oneDNN's convolution on one image change the last bit (up to 5e-7) when the
batch grows. So in exact mode (the CPU default) a GEMM runs on the whole chunk only where a probe showed, for its
shapes, that the batched call returns bit for bit what per-step-sized calls return (`batch_invariant`: the kernel
choice depends on shapes and thread count, never on values); elsewhere it runs on slices of exactly B rows in
64-byte aligned memory, which are the per-step loop's own calls.

On a GPU the GEMMs run on whole chunks (exact=False): cuDNN and cuBLAS pick their algorithm per shape, so layer
outputs equal the per-step loop's up to float rounding (relative ~1e-6), and a membrane that close to theta can
fire one step earlier or later. Expect identical per-step outputs except where such a spike flip propagates, and
identical predictions except for a few images in 10^4; the CPU analogue (exact=False on the CPU) is measured in
benchmarks/README.md. The GPU options (channels_last, the compiled scan, CUDA graphs) are used only when CUDA is
available and were not measured in this session (no GPU); reduced precision ("tf32", "bf16") is never chosen
automatically, since it changes results.
"""
from __future__ import annotations

import contextlib
import copy
import time
import weakref
from dataclasses import dataclass, replace
from typing import Iterable

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from .neurons import IFNeuron, if_neurons, if_scan_into, if_step
from .methods.srp.algorithm import residual_mask

GEMMS = (F.conv1d, F.conv2d, F.conv3d, F.linear)
# Pure functions of their first argument and fixed weights: applied to the constant input, the result is constant.
CONSTANT_SAFE = GEMMS + (F.batch_norm, F.avg_pool1d, F.avg_pool2d, F.avg_pool3d, F.adaptive_avg_pool1d,
                         F.adaptive_avg_pool2d, F.adaptive_avg_pool3d, torch.flatten, torch.Tensor.flatten,
                         torch.Tensor.reshape, torch.Tensor.view, torch.reshape)
IN_PLACE_DUNDERS = ("__setitem__", "__iadd__", "__isub__", "__imul__", "__itruediv__")
CHUNK_CANDIDATES = (1, 2, 4, 8, 16, 32)
ALIGNMENT = 64  # bytes: PyTorch's CPU allocator aligns every tensor to this, so the per-step loop's GEMMs see it
GPU_AGREEMENT = 0.99  # a GPU trial option must keep this share of the reference trial's predictions


@dataclass(frozen=True)
class Plan:
    """How the engine runs. On the CPU none of these changes the results (precision aside)."""
    chunk: int = 8              # time steps per network call
    exact: bool = True          # GEMMs batched only where bit-identical to per-step calls, else sliced
    batch_runs: bool | None = False  # stack SRP's masked phases along the batch axis (None: not measured yet)
    fused_scan: bool = False    # torch.compile'd IF scan
    channels_last: bool = False  # GPU
    cuda_graphs: bool = False    # GPU
    precision: str = "fp32"     # fp32 | tf32 | bf16 (explicit only)


def default_plan(device: torch.device, chunk: int = 8) -> Plan:
    if device.type == "cuda":
        return Plan(chunk=chunk, exact=False, batch_runs=True, channels_last=True)
    return Plan(chunk=chunk)


def reset(snn: nn.Module, clear_masks: bool = True) -> None:
    for n in if_neurons(snn):
        n.reset_state()
        if clear_masks:
            n.clear_mask()


def cumulative_predictions(step_outputs: torch.Tensor) -> torch.Tensor:
    """[T, B, C] per-step outputs -> [T, B] argmax of the running sum (prediction after 1..T steps)."""
    return step_outputs.cumsum(0).argmax(-1)


def apply_srp_masks(neurons: list[IFNeuron], rule: str) -> None:
    """Turn the neurons' current state (end of a pre-run) into SRP masks and restart them at v0."""
    for n in neurons:
        n.mask = residual_mask(n.v, n.theta, n.spike_count, rule)
        n.reset_state()


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

    def run(self, n_steps: int, rows: int, tuner: "_OnlineTuner | None" = None) -> torch.Tensor:
        """Advance all neurons n_steps steps -> [n_steps, rows, C]."""
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
        """Every neuron back to v0 for a new phase of `rows` rows, with these SRP masks (or none)."""
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

_PLANS: "weakref.WeakKeyDictionary[nn.Module, dict]" = weakref.WeakKeyDictionary()
_TUNERS: "weakref.WeakKeyDictionary[nn.Module, dict]" = weakref.WeakKeyDictionary()


def _plan_key(x: torch.Tensor, runs: int) -> tuple:
    return (x.device.type, x.device.index, tuple(x.shape), x.dtype, runs > 1, torch.get_num_threads())


def cached_plan(snn: nn.Module, x: torch.Tensor, runs: int = 1) -> Plan | None:
    """The plan chunk="auto" measured for this network and input, if any."""
    return _PLANS.get(snn, {}).get(_plan_key(x, runs))


class _OnlineTuner:
    """CPU: every configuration gives the same bits, so candidates are timed on the simulation's own steps and
    nothing is computed twice. Each chunk size is timed `reps` times with the eager IF scan, then with the compiled
    one (whose first call per chunk size compiles and is not timed; nor is the first call of a simulation, which
    also computes the constant prefix). Time per step and row, best of reps, decides."""

    def __init__(self, n_steps: int, try_fused: bool, reps: int = 2):
        chunks = [c for c in CHUNK_CANDIDATES if c <= max(n_steps, 1)]
        self.queue = [((chunks[0], False), False)] + [((c, False), True) for c in chunks for _ in range(reps)]
        self.try_fused, self.reps = try_fused, reps
        self.times: dict[tuple[int, bool], float] = {}
        self.fused_failed: str | None = None

    @property
    def done(self) -> bool:
        return not self.queue

    def best(self) -> tuple[int, bool]:
        return min(self.times, key=self.times.get) if self.times else (1, False)

    def next(self, remaining: int) -> tuple[int, bool, tuple | None]:
        if self.queue and self.queue[0][0][0] <= remaining:
            (k, fused), _ = self.queue[0]
            return k, fused, self.queue[0]
        k, fused = self.best()
        return min(k, remaining), fused, None

    def record(self, trial, seconds_per_row_step: float, fused_broken: str | None) -> None:
        if trial is None or not self.queue or self.queue[0] is not trial:
            return
        self.queue.pop(0)
        config, timed = trial
        if config[1] and fused_broken:
            self.fused_failed = fused_broken
            self.queue = [t for t in self.queue if not t[0][1]]
            return
        if timed:
            self.times[config] = min(self.times.get(config, float("inf")), seconds_per_row_step)
        if self.try_fused and not self.queue:  # eager scan timed: now the compiled one at every chunk size
            self.try_fused = False
            chunks = sorted({c for c, _ in self.times})
            self.queue = [((c, True), t) for c in chunks for t in [False] + [True] * self.reps]

    def plan(self, base: Plan) -> Plan:
        k, fused = self.best()
        return replace(base, chunk=k, fused_scan=fused)


def _gpu_tune(snn: nn.Module, x: torch.Tensor, t_run: int, runs: int, trial_steps: int = 16) -> Plan:
    """Short trial runs of the plain phase on x, greedily: chunk size, then channels_last, the compiled scan, CUDA
    graphs, and stacked masked phases. An option is kept only if faster and if its trial still agrees with the
    reference trial (chunk 1): predictions within GPU_AGREEMENT for chunk and layout changes (different GEMM
    algorithms), bit for bit for the compiled scan and CUDA graphs (elementwise, or the same kernels replayed)."""
    steps = max(1, min(t_run, trial_steps))

    def trial(plan: Plan, runs_stacked: int = 1, repeats: int = 2):
        """(seconds per run of `steps` steps, per-step outputs of the first run). One engine, so CUDA graphs are
        captured in the untimed first round and replayed in the timed ones, as in a long simulation."""
        rows = x.shape[0] * runs_stacked
        reset(snn)
        engine = _Engine(snn, x, plan)
        try:
            best, first = float("inf"), None
            for i in range(repeats + 1):
                engine.restart(rows, None)
                torch.cuda.synchronize()
                t0 = time.perf_counter()
                out = engine.run(steps, rows)
                torch.cuda.synchronize()
                if plan.fused_scan and engine.scan.broken:
                    return float("inf"), None
                if i == 0:
                    first = out[:, :x.shape[0]].clone()
                else:
                    best = min(best, time.perf_counter() - t0)
            return best / runs_stacked, first
        except Exception:  # an option that fails on this device or torch version is simply not used
            return float("inf"), None
        finally:
            engine.close()
            reset(snn)

    def agree(a, b, exact: bool) -> bool:
        if a is None or b is None:
            return False
        if exact:
            return torch.equal(a, b)
        same = (cumulative_predictions(a)[-1] == cumulative_predictions(b)[-1]).float().mean()
        return bool(same >= GPU_AGREEMENT)

    base = default_plan(x.device, 1)
    best_plan = replace(base, channels_last=False)
    best_time, reference = trial(best_plan)
    for c in [c for c in CHUNK_CANDIDATES if 1 < c <= steps]:
        t, out = trial(replace(best_plan, chunk=c))
        if t < best_time and agree(out, reference, exact=False):
            best_plan, best_time = replace(best_plan, chunk=c), t
    current = trial(best_plan)[1]
    for option, exact in (("channels_last", False), ("fused_scan", True), ("cuda_graphs", True)):
        candidate = replace(best_plan, **{option: True})
        t, out = trial(candidate)
        if t < best_time and agree(out, reference if not exact else current, exact):
            best_plan, best_time, current = candidate, t, out
        if option == "channels_last" and not best_plan.channels_last:
            snn.to(memory_format=torch.contiguous_format)
    if runs > 1:
        stacked, _ = trial(replace(best_plan, batch_runs=True), runs_stacked=runs)
        best_plan = replace(best_plan, batch_runs=stacked < best_time)
    return best_plan


def tune(snn: nn.Module, x: torch.Tensor, t_run: int, taus: Iterable[int] = (0,), rule: str = "reference") -> Plan:
    """Measure (and cache) the fastest plan for this network, input shape, thread count and device: what
    chunk="auto" uses. On the CPU this runs simulations with chunk="auto" (discarding their results) until the
    measurement is complete; on a GPU, short trial runs."""
    runs = sum(1 for t in set(taus) if t > 0)
    for _ in range(64):  # each call times a few candidates on its own steps
        plan = cached_plan(snn, x, runs)
        if plan is not None and (runs < 3 or plan.batch_runs is not None):
            return plan
        if x.is_cuda:
            _store_plan(snn, x, runs, _gpu_tune(snn, x, t_run, runs))
        else:
            simulate(snn, x, t_run, taus, rule, chunk="auto")
    return cached_plan(snn, x, runs) or default_plan(x.device)


def _store_plan(snn, x, runs: int, plan: Plan) -> None:
    _PLANS.setdefault(snn, {})[_plan_key(x, runs)] = plan
    _TUNERS.get(snn, {}).pop(_plan_key(x, runs), None)


def _start(snn, x, n_steps: int, runs: int, chunk, plan: Plan | None, may_trial: bool):
    """(plan, online tuner or None) for the chunk argument: an int fixes the chunk size, "auto" measures."""
    if plan is not None:
        return plan, None
    if chunk != "auto":
        return default_plan(x.device, int(chunk)), None
    cached = cached_plan(snn, x, runs)
    if cached is not None:
        return cached, None
    if x.is_cuda:
        if not may_trial:  # trial runs would disturb the neurons' state: the default until simulate has tuned
            return default_plan(x.device), None
        plan = _gpu_tune(snn, x, n_steps, runs)
        _store_plan(snn, x, runs, plan)
        return plan, None
    tuners = _TUNERS.setdefault(snn, {})  # a measurement continues over calls until every candidate is timed
    key = _plan_key(x, runs)
    if key not in tuners:
        # the compiled scan is not tried on the CPU: each chunk size compiles anew, which cost more than the whole
        # evaluation of the default networks (benchmarks/README.md); Plan(fused_scan=True) still uses it
        tuners[key] = _OnlineTuner(n_steps, try_fused=False)
    return replace(default_plan(x.device), batch_runs=None), tuners[key]


@torch.no_grad()
def run_steps(snn: nn.Module, x: torch.Tensor, n_steps: int, chunk: int | str = 8,
              plan: Plan | None = None) -> torch.Tensor:
    """Advance the SNN `n_steps` steps on constant input x [B, ...]; returns per-step outputs [n_steps, B, C].
    The neurons keep their state (and masks) between calls, as in the per-step loop."""
    plan, tuner = _start(snn, x, n_steps, 1, chunk, plan, may_trial=False)
    engine = _Engine(snn, x, plan)
    try:
        out = engine.run(n_steps, x.shape[0], tuner)
    finally:
        engine.close()
    if tuner is not None and tuner.done:
        _store_plan(snn, x, 1, tuner.plan(plan))
    return out


@torch.no_grad()
def simulate(snn: nn.Module, x: torch.Tensor, t_run: int, taus: Iterable[int] = (0,), rule: str = "reference",
             chunk: int | str = 8, plan: Plan | None = None) -> dict[int, torch.Tensor]:
    """Per-step outputs [t_run, B, C] of plain QCFS (tau = 0) and of SRP for every tau > 0, in one simulation.

    SRP's pre-run of tau steps is exactly the first tau steps of the plain run: the plain run is simulated once
    (to t_run, or to max(taus) if longer or if 0 is not asked for) and its state after tau steps becomes that
    tau's masks. Then each masked phase runs t_run steps from v0, alone or stacked with the others. Each tau's
    result equals a separate simulation of that tau alone (bit for bit on the CPU).
    `chunk`: time steps per network call, or "auto" (measured, module docstring); `plan` overrides both."""
    taus = sorted(set(int(t) for t in taus))
    if any(t < 0 for t in taus):
        raise ValueError(f"taus must be >= 0, got {taus}")
    pre = [t for t in taus if t > 0]
    B = x.shape[0]
    plan, tuner = _start(snn, x, max([t_run] + pre), len(pre), chunk, plan, may_trial=True)
    results: dict[int, torch.Tensor] = {}
    masks: dict[int, list[torch.Tensor]] = {}
    engine = _Engine(snn, x, plan)
    stacking: dict[bool, float] = {}
    try:
        engine.restart(B, None)
        t_plain = max(([t_run] if 0 in taus else []) + pre)
        outs, done = [], 0
        for stop in sorted(set(pre + [t_plain])):
            engine.count_spikes(rule == "exact" and stop <= max(pre, default=0))  # only the exact rule reads counts
            outs.append(engine.run(stop - done, B, tuner))
            done = stop
            if stop in pre:  # snapshot: this tau's SRP masks, kept as bool (applied as 0/1 factors)
                masks[stop] = [residual_mask(n.v, n.theta, n.spike_count, rule).bool() for n in engine.neurons]
        if 0 in taus:
            results[0] = torch.cat(outs)[:t_run]
        engine.count_spikes(False)
        measure = (chunk == "auto" and plan.batch_runs is None and len(pre) > 2 and not engine.observed
                   and (tuner is None or tuner.done))
        if measure:  # stacked or one after another: time one phase alone, then the others stacked
            groups = [pre[:1], pre[1:]]
        elif plan.batch_runs and len(pre) > 1 and not engine.observed and (tuner is None or tuner.done):
            groups = [pre]
        else:
            groups = [[t] for t in pre]
        for group in groups:
            rows = B * len(group)
            engine.restart(rows, [torch.cat([masks[t][i] for t in group]) for i in range(len(engine.neurons))])
            t0 = time.perf_counter()
            out = engine.run(t_run, rows, tuner).reshape(t_run, len(group), B, -1)
            stacking[len(group) > 1] = (time.perf_counter() - t0) / (rows * max(t_run, 1))
            for j, t in enumerate(group):
                results[t] = out[:, j]
    finally:
        engine.close()
        reset(snn)
    if chunk == "auto" and (tuner is None or tuner.done):
        tuned = tuner.plan(plan) if tuner is not None else plan
        if measure:
            tuned = replace(tuned, batch_runs=stacking[True] < stacking[False])
        _store_plan(snn, x, len(pre), tuned)
    return results


# ---------------------------------------------------------------------------------------------------------------
# The baseline: the papers' per-step loop, written independently of the engine

class _LoopIF(nn.Module):
    """The IF layer of the papers' code: its own membrane, one `if_step` per call (one time step)."""

    def __init__(self, neuron: IFNeuron):
        super().__init__()
        from .methods.cq.encoding import SpikeEncoder
        self.encoder = isinstance(neuron, SpikeEncoder)
        self.theta, self.v0_fraction = neuron.theta.clone(), neuron.v0_fraction
        self.v = self.count = self.mask = None

    def forward(self, x):
        dtype = x.dtype
        if self.encoder:
            x = x.to(torch.float64).clamp(0.0, 1.0)
        theta = self.theta.to(x.dtype)
        if self.v is None:
            self.v = torch.full_like(x, self.v0_fraction) * theta
            self.count = torch.zeros_like(x)
        self.v, s = if_step(self.v, x, theta)
        self.count = self.count + s
        out = s * theta if self.mask is None else s * theta * self.mask
        return out.to(dtype) if self.encoder else out


@torch.no_grad()
def per_step_loop(snn: nn.Module, x: torch.Tensor, t_run: int, tau: int = 0,
                  rule: str = "reference") -> torch.Tensor:
    """The papers' loop: the whole network called once per time step on x [B, ...] -> [t_run, B, C]. With
    tau > 0: SRP, a pre-run of tau steps, masks from its residual potentials, then t_run masked steps from v0.
    Runs on a copy whose IF layers are `_LoopIF`, so it shares no code with the engine beyond `if_step`."""
    net = copy.deepcopy(snn)

    def swap(module):
        for name, child in module.named_children():
            if isinstance(child, IFNeuron):
                setattr(module, name, _LoopIF(child))
            else:
                swap(child)
    swap(net)
    layers = [m for m in net.modules() if isinstance(m, _LoopIF)]
    if tau > 0:
        for _ in range(tau):
            net(x)
        for n in layers:
            n.mask = residual_mask(n.v, n.theta, n.count, rule)
            n.v = n.count = None
    return torch.stack([net(x) for _ in range(t_run)]) if t_run else x.new_zeros(0, x.shape[0], 0)
