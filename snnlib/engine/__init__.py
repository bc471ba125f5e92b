"""Simulation of converted SNNs: the multi-step engine (core.py), its plans and their tuning (plans.py), and the
per-step reference loop it is tested against (reference_loop.py). docs/engine.md describes how they work."""
from .core import (PLAIN, Branch, CheckedScan, Simulation, batch_invariant, cumulative_predictions, fused_scan,
                   gemm_batching, reset, run_steps, simulate)
from .plans import Plan, cached_plan, default_plan, tune
from .reference_loop import per_step_loop

__all__ = ["PLAIN", "Branch", "CheckedScan", "Plan", "Simulation", "batch_invariant", "cached_plan",
           "cumulative_predictions", "default_plan", "fused_scan", "gemm_batching", "per_step_loop", "reset",
           "run_steps", "simulate", "tune"]
