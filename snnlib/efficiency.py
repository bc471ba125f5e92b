"""Efficiency of one evaluation, measured on every evaluated image (docs/efficiency.md; NeuroBench's definitions).

`EfficiencyTally` sums `SynOpsMeter.per_step()` over the evaluation's batches, splitting off SRP's pre-run, and
`summary` turns it into what the evaluation report stores: per image, the pre-run's operations and the read-out
phase's cumulative operations after every T, and cumulative firing rates after every T. `at_T` reads one T back
out as result-row columns, with energy from a stated cost table (metrics.HOROWITZ_45NM_FP32 by default).

Conventions, stated once:
  ops          synaptic operations per image; SRP's tau pre-run steps are included in ACs/MACs/dense at every T
  firing rate  emitted spikes per neuron per read-out step (pre-run excluded; silenced neurons emit none),
               over the hidden IF layers (CQ's input encoder excluded: its spikes are the encoded image)
  sparsity     activation sparsity = share of zero entries among the hidden layers' spike outputs over the
               read-out steps, i.e. 1 - firing rate for binary spikes
  ANN MACs     the dense pairs of one step: the SNN's Conv/Linear layers are the ANN's, so one ANN forward
  NeuroBench   the same numbers under NeuroBench's names (`neurobench_columns`): Effective_ACs = acs,
               Effective_MACs = macs, Dense = dense_ops, ActivationSparsity = activation_sparsity, and
               SynOps = Effective_ACs + Effective_MACs (all effective synaptic operations); docs/efficiency.md, §1
"""
from __future__ import annotations

import numpy as np

from .metrics import HOROWITZ_45NM_FP32, energy_pj

OPS = ("acs", "macs", "dense")


class EfficiencyTally:
    def __init__(self, prerun_steps: int, run_steps: int):
        self.prerun_steps, self.run_steps = prerun_steps, run_steps
        self.prerun = {k: 0.0 for k in OPS}
        self.run = {k: np.zeros(run_steps) for k in OPS}
        self.spikes: dict[str, np.ndarray] = {}
        self.n_images = 0

    def add(self, per_step: dict, n_images: int) -> None:
        """One batch of n_images: per_step arrays of exactly prerun_steps + run_steps steps."""
        want = self.prerun_steps + self.run_steps
        if len(per_step["acs"]) != want:
            raise ValueError(f"expected {want} recorded steps (pre-run {self.prerun_steps} + run {self.run_steps}), "
                             f"got {len(per_step['acs'])}")
        p = self.prerun_steps
        for k in OPS:
            self.prerun[k] += float(per_step[k][:p].sum())
            self.run[k] += per_step[k][p:]
        for name, s in per_step["spikes"].items():
            self.spikes[name] = self.spikes.get(name, np.zeros(self.run_steps)) + s[p:]
        self.n_images += n_images

    def summary(self, layer_sizes: dict[str, int], exclude: set[str] = frozenset()) -> dict:
        n = max(self.n_images, 1)
        steps = np.arange(1, self.run_steps + 1)
        layers = []
        total_spikes, total_neurons = np.zeros(self.run_steps), 0
        for name, s in self.spikes.items():
            size = layer_sizes[name]
            rate = np.cumsum(s) / (n * size * steps)
            layers.append({"layer": name, "neurons": size, "encoder": name in exclude,
                           "firing_rate": _round(rate)})
            if name not in exclude:
                total_spikes, total_neurons = total_spikes + s, total_neurons + size
        hidden = np.cumsum(total_spikes) / (n * max(total_neurons, 1) * steps)
        return {"n_images": self.n_images, "prerun_steps": self.prerun_steps,
                "prerun": {k: v / n for k, v in self.prerun.items()},
                "run_cumulative": {k: _round(np.cumsum(v) / n) for k, v in self.run.items()},
                "ann_macs": float(self.run["dense"][0] / n) if self.run_steps else 0.0,
                "hidden_neurons": total_neurons, "firing_rate": _round(hidden), "layers": layers}


def _round(a: np.ndarray) -> list[float]:
    return [float(f"{v:.8g}") for v in a]


def costs_label(costs: dict) -> str:
    return f"MAC {costs['mac_pj']} pJ, AC {costs['ac_pj']} pJ ({costs['source']})"


def at_T(eff: dict | None, T: int, costs: dict = HOROWITZ_45NM_FP32) -> dict:
    """Result-row columns after T read-out steps (pre-run included); NaN where the evaluation measured nothing."""
    if not eff or T > len(eff["firing_rate"]):
        return {c: float("nan") for c in ROW_COLUMNS} | {"layer_firing_rates": "", "energy_costs": ""}
    ops = {k: eff["prerun"][k] + eff["run_cumulative"][k][T - 1] for k in OPS}
    snn_uj = energy_pj(ops["acs"], ops["macs"], costs) * 1e-6
    ann_uj = energy_pj(0.0, eff["ann_macs"], costs) * 1e-6
    rate = eff["firing_rate"][T - 1]
    row = {"firing_rate": rate, "activation_sparsity": 1.0 - rate, "acs": ops["acs"], "macs": ops["macs"],
           "dense_ops": ops["dense"],
           "prerun_ops_share": (eff["prerun"]["acs"] + eff["prerun"]["macs"]) / max(ops["acs"] + ops["macs"], 1e-12),
           "energy_uj": snn_uj, "ann_macs": eff["ann_macs"], "ann_energy_uj": ann_uj,
           "energy_ratio": snn_uj / ann_uj if ann_uj else float("nan"),
           "layer_firing_rates": ";".join(f"{layer['firing_rate'][T - 1]:.4g}" for layer in eff["layers"]
                                          if not layer["encoder"]),
           "energy_costs": costs_label(costs)}
    return row | neurobench_columns(row)


# NeuroBench's name -> our column holding the same number (docs/efficiency.md, §1)
NEUROBENCH_NAMES = {"Effective_ACs": "acs", "Effective_MACs": "macs", "Dense": "dense_ops",
                    "ActivationSparsity": "activation_sparsity"}


def neurobench_columns(values):
    """NeuroBench's names for our numbers, from `values` (a result row, or a frame of rows: anything indexed by
    column name): the columns of NEUROBENCH_NAMES copied, and SynOps, the total of effective synaptic operations
    per image = Effective_ACs + Effective_MACs. The only place these columns are made: a row (`at_T`) gets them
    here, and so does a table read from a results.csv written before they existed (efficiency_report.py)."""
    return {"SynOps": values["acs"] + values["macs"],
            **{name: values[ours] for name, ours in NEUROBENCH_NAMES.items()}}


ROW_COLUMNS = ["firing_rate", "activation_sparsity", "acs", "macs", "dense_ops", "prerun_ops_share", "energy_uj",
               "ann_macs", "ann_energy_uj", "energy_ratio", "SynOps", *NEUROBENCH_NAMES]
