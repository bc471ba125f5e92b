"""Unevenness-error analysis (SRP paper's subject; docs/methods/qcfs.md, §5; docs/methods/srp.md).

For every spiking neuron and input we compare, after T counted steps:

    phi   = n_emitted * theta / T                   what the neuron actually passed on (SRP's mask applied)
    ideal = theta * clip(floor(T * z / theta + 1/2) / T, 0, 1),  z = its mean input current over the T steps

`ideal` is what the same neuron emits when the same total input arrives evenly (QCFS with L = T on the mean
input, which an IF neuron with v0 = theta/2 computes exactly on constant input). Any difference is therefore due
to the *order* in which input arrived: the unevenness error, separated from quantization and from errors
propagated from earlier layers (those change z, not the comparison).

The four categories follow the SRP abstract's description ("the ANN output being zero while the SNN output being
larger than zero accounts for the largest percentage"); their exact definitions in the paper were not available,
so this split is our reconstruction (docs/methods/qcfs.md, §5):

    ann0_snn_pos   ideal = 0,  phi > 0       (what SRP targets)
    ann_pos_snn0   ideal > 0,  phi = 0
    snn_under      ideal > phi > 0
    snn_over       phi > ideal > 0
"""
from __future__ import annotations

import torch

from .engine import PLAIN, reset, simulate
from .methods.srp.algorithm import srp_branches, srp_key
from .neurons import if_neurons

CATEGORIES = ("match", "ann0_snn_pos", "ann_pos_snn0", "snn_under", "snn_over")
ERROR_CATEGORIES = CATEGORIES[1:]


def ideal_output(z_mean: torch.Tensor, theta: torch.Tensor, T: int) -> torch.Tensor:
    return theta * torch.clamp(torch.floor(T * z_mean / theta + 0.5) / T, 0.0, 1.0)


def classify(ideal: torch.Tensor, phi: torch.Tensor, tol: float = 1e-6) -> torch.Tensor:
    """Category index (into CATEGORIES) of every (ideal, phi) pair."""
    code = torch.zeros(ideal.shape, dtype=torch.long)
    zero_a, zero_p = ideal.abs() <= tol, phi.abs() <= tol
    differ = (ideal - phi).abs() > tol
    code[differ & zero_a & ~zero_p] = 1
    code[differ & ~zero_a & zero_p] = 2
    code[differ & ~zero_a & ~zero_p & (ideal > phi)] = 3
    code[differ & ~zero_a & ~zero_p & (phi > ideal)] = 4
    return code


def category_shares(code: torch.Tensor) -> dict[str, float]:
    counts = torch.bincount(code.flatten(), minlength=len(CATEGORIES)).double()
    return dict(zip(CATEGORIES, (counts / counts.sum()).tolist()))


@torch.no_grad()
def analyse(snn: torch.nn.Module, x: torch.Tensor, t_run: int, T_grid: list[int], tau: int = 0,
            rule: str = "reference") -> dict[str, list[dict]]:
    """{"layers": rows {tau, T, layer, neurons, <category shares>, mean_abs_error, firing_rate} for every spiking
    layer and T in T_grid}. (Operation counts are measured by every evaluation: efficiency.py.)

    One simulation, one step per network call, of plain QCFS (tau 0) or of SRP's two phases (methods/srp), with
    hooks on the IF layers: the first `tau` calls are SRP's pre-run, the next t_run its counted run."""
    neurons = if_neurons(snn)
    reset(snn)
    skip = tau  # network calls before the counted run
    calls = [0] * len(neurons)
    input_sum = [None] * len(neurons)
    emitted = [None] * len(neurons)
    found: dict[tuple[int, int], dict] = {}

    def hook(i):
        def record(mod, inp, out):
            calls[i] += 1
            t = calls[i] - skip  # step of the counted run
            if t < 1:
                return
            z, s = inp[0], out / mod.theta
            input_sum[i] = z.clone() if input_sum[i] is None else input_sum[i] + z
            emitted[i] = s.clone() if emitted[i] is None else emitted[i] + s
            if t in T_grid:
                ideal = ideal_output(input_sum[i] / t, mod.theta, t)
                phi = emitted[i] * mod.theta / t
                code = classify(ideal.cpu(), phi.cpu())
                found[t, i] = {"tau": tau, "T": t, "layer": i, "neurons": int(code[0].numel()),
                               **category_shares(code), "mean_abs_error": float((ideal - phi).abs().mean()),
                               "firing_rate": float(emitted[i].mean()) / t}
        return record

    handles = [n.register_forward_hook(hook(i)) for i, n in enumerate(neurons)]
    try:
        sim = simulate(snn, x, t_run, srp_branches([tau], rule) if tau > 0 else None, plain=tau == 0, chunk=1)
    finally:
        for h in handles:
            h.remove()
        reset(snn)
    key = srp_key(tau) if tau > 0 else PLAIN
    if sim.steps != {key: list(range(skip + t_run))}:  # what the hooks assumed about the order of the calls
        raise RuntimeError(f"unexpected order of the simulated steps: {sim.steps}")
    return {"layers": [found[k] for k in sorted(found)]}
