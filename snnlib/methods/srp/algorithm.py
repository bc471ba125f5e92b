"""SRP, the paper's Algorithm 1 (Hao et al., AAAI 2023; docs/methods/srp.md): reduce unevenness error by
silencing, before the counted run, the neurons whose residual membrane potential after a short pre-run shows that
they would fire although their ANN activation is zero.

  1. Pre-run: tau steps of the converted SNN from v0 = theta/2 on the input.
  2. Residual rule: from each neuron's residual potential v(tau) (and spike count) per input sample, a 0/1 mask.
  3. Counted run: every neuron back to v0, t_run steps with the masked neurons' spikes suppressed; the
     readout accumulates only these steps.

Step 1 is exactly the first tau steps of plain QCFS, so every tau of a sweep is a `Branch` of one plain run
(snnlib/engine: shared prefix, masked runs stacked). The per-step reference loop runs the same algorithm on its
own, for the tests.
"""
from __future__ import annotations

from functools import partial
from typing import Iterable

import torch
from torch import nn

from ...engine import Branch, Plan, per_step_loop, simulate

SRP_RULES = ("reference", "exact")
REFERENCE_TOLERANCE = 1e-3


# 2. The residual rule ----------------------------------------------------------------------------------------------

def residual_mask(v: torch.Tensor, theta: torch.Tensor, spike_count: torch.Tensor | None, rule: str) -> torch.Tensor:
    """1 where a neuron keeps firing in the counted run, 0 where SRP silences it. Two rules:

    reference  the authors' released rule: keep a neuron iff v(tau) > 1e-3 * theta (silences every neuron whose
               residual is non-positive, whether or not it fired). Needs no spike count.
    exact      the condition derived in docs/methods/srp.md for "ANN output 0 but SNN output > 0": with n spikes
               in the pre-run, silence iff n >= 1 and v(tau) < (1 - n) * theta. It never silences a neuron whose
               QCFS output (L = tau, same mean input) would be positive.
    """
    if rule == "reference":
        keep = v > REFERENCE_TOLERANCE * theta
    elif rule == "exact":
        keep = ~((spike_count >= 1) & (v < (1 - spike_count) * theta))
    else:
        raise ValueError(f"unknown SRP rule {rule!r}; valid: {SRP_RULES}")
    return keep.to(v.dtype)


def _rule(rule: str) -> str:
    if rule not in SRP_RULES:
        raise ValueError(f"unknown SRP rule {rule!r}; valid: {SRP_RULES}")
    return rule


# 1 + 3. Pre-run, then the masked counted run -----------------------------------------------------------------------

def srp_key(tau: int) -> str:
    return f"tau{int(tau)}"


def srp_branches(taus: Iterable[int], rule: str = "reference") -> dict[str, Branch]:
    """SRP for every tau > 0 as engine branches, keyed srp_key(tau) = f"tau{tau}": fork after the tau-step pre-run,
    mask by the residual rule (spike counts only where the rule reads them)."""
    rule = _rule(rule)
    taus = sorted(set(int(t) for t in taus))
    if any(t < 1 for t in taus):
        raise ValueError(f"SRP's pre-run needs tau >= 1, got {taus} (tau 0 is plain QCFS: simulate_srp)")
    mask = partial(residual_mask, rule=rule)
    return {srp_key(t): Branch(after=t, mask=mask, counts=rule == "exact") for t in taus}


def simulate_srp(snn: nn.Module, x: torch.Tensor, t_run: int, taus: Iterable[int], rule: str = "reference",
                 chunk: int | str = 8, plan: Plan | None = None) -> dict[int, torch.Tensor]:
    """Per-step outputs [t_run, B, C] by tau: plain QCFS for tau 0, SRP for every tau > 0, in one simulation
    (shared pre-run prefix, snnlib/engine). Each equals a separate simulation of that tau alone."""
    taus = sorted(set(int(t) for t in taus))
    if any(t < 0 for t in taus):
        raise ValueError(f"taus must be >= 0, got {taus}")
    srp = [t for t in taus if t > 0]
    out = simulate(snn, x, t_run, srp_branches(srp, rule), plain=0 in taus, chunk=chunk, plan=plan)
    return {t: out[srp_key(t) if t else ""] for t in taus}


def per_step_srp(snn: nn.Module, x: torch.Tensor, t_run: int, tau: int, rule: str = "reference") -> torch.Tensor:
    """The same algorithm in the papers' per-step loop (the engine's reference): [t_run, B, C]; tau 0 is QCFS."""
    if tau < 0:
        raise ValueError(f"tau must be >= 0, got {tau}")
    mask = partial(residual_mask, rule=_rule(rule)) if tau else None
    return per_step_loop(snn, x, t_run, prerun=tau, mask=mask)
