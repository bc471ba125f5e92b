"""SRP's residual-membrane-potential rule (Hao et al., AAAI 2023; spec srp_qcfs.md §3).

After a pre-run of tau steps from v0 = theta/2, each neuron's residual potential v(tau) (per input sample) decides
whether the neuron is silenced for the counted run. Two rules:

reference  the authors' released rule: keep a neuron iff v(tau) > 1e-3 * theta (silences every neuron whose
           residual is non-positive, whether or not it fired).
exact      the condition we derive in spec §3.2 for "ANN output 0 but SNN output > 0": with n spikes in the
           pre-run, silence iff n >= 1 and v(tau) < (1 - n) * theta. It never silences a neuron whose QCFS
           output (L = tau, same mean input) would be positive.
"""
from __future__ import annotations

import torch

SRP_RULES = ("reference", "exact")
REFERENCE_TOLERANCE = 1e-3


def residual_mask(v: torch.Tensor, theta: torch.Tensor, spike_count: torch.Tensor, rule: str) -> torch.Tensor:
    """1 where a neuron keeps firing in the counted run, 0 where SRP silences it."""
    if rule == "reference":
        keep = v > REFERENCE_TOLERANCE * theta
    elif rule == "exact":
        keep = ~((spike_count >= 1) & (v < (1 - spike_count) * theta))
    else:
        raise ValueError(f"unknown SRP rule {rule!r}; valid: {SRP_RULES}")
    return keep.to(v.dtype)
