"""How the engine runs (`Plan`) and how chunk="auto" chooses it by measurement, per network, input and device.

CPU: every plan gives the same bits, so candidates are timed on the simulation's own steps (`_OnlineTuner`,
nothing is computed twice), over one or more simulate calls until every candidate is timed. GPU: short trial runs
of the plain phase (`_gpu_tune`), keeping an option only if it is faster and reproduces the trial's reference
output. Reduced precision ("tf32", "bf16") is never chosen automatically, since it changes results. The measured
plans are cached per network (weakly) and input signature (`cached_plan`).
"""
from __future__ import annotations

import time
import weakref
from dataclasses import dataclass, replace
from typing import Mapping

import torch
from torch import nn

from . import core  # the engine runs the trials; core imports this module first, so use core.<name> at call time

CHUNK_CANDIDATES = (1, 2, 4, 8, 16, 32)
GPU_AGREEMENT = 0.99  # a GPU trial option must keep this share of the reference trial's predictions


@dataclass(frozen=True)
class Plan:
    """How the engine runs. On the CPU none of these changes the results (precision aside)."""
    chunk: int = 8              # time steps per network call
    exact: bool = True          # GEMMs batched only where bit-identical to per-step calls, else sliced
    batch_runs: bool | None = False  # stack the branches' masked runs along the batch axis (None: not measured)
    fused_scan: bool = False    # torch.compile'd IF scan
    channels_last: bool = False  # GPU
    cuda_graphs: bool = False    # GPU
    precision: str = "fp32"     # fp32 | tf32 | bf16 (explicit only)


def default_plan(device: torch.device, chunk: int = 8) -> Plan:
    if device.type == "cuda":
        return Plan(chunk=chunk, exact=False, batch_runs=True, channels_last=True)
    return Plan(chunk=chunk)


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
    graphs, and stacked masked runs. An option is kept only if faster and if its trial still agrees with the
    reference trial (chunk 1): predictions within GPU_AGREEMENT for chunk and layout changes (different GEMM
    algorithms), bit for bit for the compiled scan and CUDA graphs (elementwise, or the same kernels replayed)."""
    steps = max(1, min(t_run, trial_steps))

    def trial(plan: Plan, runs_stacked: int = 1, repeats: int = 2):
        """(seconds per run of `steps` steps, per-step outputs of the first run). One engine, so CUDA graphs are
        captured in the untimed first round and replayed in the timed ones, as in a long simulation."""
        rows = x.shape[0] * runs_stacked
        core.reset(snn)
        engine = core._Engine(snn, x, plan)
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
            core.reset(snn)

    def agree(a, b, exact: bool) -> bool:
        if a is None or b is None:
            return False
        if exact:
            return torch.equal(a, b)
        same = (core.cumulative_predictions(a)[-1] == core.cumulative_predictions(b)[-1]).float().mean()
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


def tune(snn: nn.Module, x: torch.Tensor, t_run: int, branches: Mapping[str, "core.Branch"] | None = None,
         plain: bool = True) -> Plan:
    """Measure (and cache) the fastest plan for simulating these keys (as `core.simulate` takes them) on this
    network, input shape, thread count and device: what chunk="auto" uses. On the CPU this runs simulations with
    chunk="auto" (discarding their results) until the measurement is complete; on a GPU, short trial runs."""
    runs = len(branches or {})
    for _ in range(64):  # each call times a few candidates on its own steps
        plan = cached_plan(snn, x, runs)
        if plan is not None and (runs < 3 or plan.batch_runs is not None):
            return plan
        if x.is_cuda:
            store_plan(snn, x, runs, _gpu_tune(snn, x, t_run, runs))
        else:
            core.simulate(snn, x, t_run, branches, plain, chunk="auto")
    return cached_plan(snn, x, runs) or default_plan(x.device)


def store_plan(snn, x, runs: int, plan: Plan) -> None:
    _PLANS.setdefault(snn, {})[_plan_key(x, runs)] = plan
    _TUNERS.get(snn, {}).pop(_plan_key(x, runs), None)


def start_plan(snn, x, n_steps: int, runs: int, chunk, plan: Plan | None, may_trial: bool):
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
        store_plan(snn, x, runs, plan)
        return plan, None
    tuners = _TUNERS.setdefault(snn, {})  # a measurement continues over calls until every candidate is timed
    key = _plan_key(x, runs)
    if key not in tuners:
        # the compiled scan is not tried on the CPU: each chunk size compiles anew, which cost more than the whole
        # evaluation of the default networks (benchmarks/README.md); Plan(fused_scan=True) still uses it
        tuners[key] = _OnlineTuner(n_steps, try_fused=False)
    return replace(default_plan(x.device), batch_runs=None), tuners[key]

