"""Our operation counts and activation sparsity against NeuroBench's own metrics, on small converted networks.

Needs the optional `neurobench` package (pip install -e '.[neurobench]'); skipped without it. Both meters watch
the same simulation (their hooks side by side), so they see the same tensors. docs/efficiency.md, §6, states what
must agree and the one documented difference: NeuroBench decides that an input is spikes by its values (every
entry 0, 1 or -1), we by its origin (an IF layer's output). With theta = 1 the two rules agree and so must every
number; with theta != 1 NeuroBench counts our spikes (0 or theta) as MACs, so its Effective_ACs are 0 and its
Effective_MACs are our SynOps, while Dense and the total are the same.
"""
import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("neurobench", reason="the optional neurobench package is not installed "
                                         "(pip install -e '.[neurobench]')")

from neurobench.metrics.workload import ActivationSparsity, SynapticOperations  # noqa: E402
from neurobench.models import TorchModel  # noqa: E402

from snnlib.efficiency import EfficiencyTally, at_T  # noqa: E402
from snnlib.engine import simulate  # noqa: E402
from snnlib.methods.qcfs.activation import QCFS  # noqa: E402
from snnlib.methods.qcfs.conversion import convert  # noqa: E402
from snnlib.methods.srp.algorithm import simulate_srp  # noqa: E402
from snnlib.metrics import SynOpsMeter  # noqa: E402
from snnlib.models import create_model  # noqa: E402
from snnlib.neurons import IFNeuron  # noqa: E402

T, B = 6, 4


def _snn(name: str, theta: float) -> nn.Module:
    """A QCFS ANN with random weights (some zero, so that the non-zero weight pattern matters), every lambda set
    to theta, converted."""
    torch.manual_seed(0)
    if name == "lenet":  # conv, BN, IF, average pooling (pooled spikes are not binary), flatten, linear
        ann = create_model("lenet", num_classes=10, in_channels=1, image_size=28, act=lambda: QCFS(4, 1.0))
    else:  # no pooling: every hidden conv / linear layer reads spikes
        ann = nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.BatchNorm2d(6), QCFS(4, 1.0),
                            nn.Conv2d(6, 8, 3, stride=2, padding=1, bias=False), QCFS(4, 1.0), nn.Flatten(),
                            nn.Linear(8 * 14 * 14, 32), QCFS(4, 1.0), nn.Linear(32, 10))
    with torch.no_grad():
        for m in ann.modules():
            if isinstance(m, QCFS):
                m.lam.fill_(theta)
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight[0].zero_()
    return convert(ann.eval())


def _both(snn: nn.Module, x: torch.Tensor, t_pre: int, run) -> tuple[dict, dict, dict, dict]:
    """(our row columns at T, our exact per-image totals, NeuroBench's numbers, our per-step record) of one
    simulation watched by both. The row columns are stored to 8 significant digits (efficiency.py), so they are
    compared to that precision; the totals exactly."""
    model = TorchModel(snn)
    model.add_activation_module(IFNeuron)
    model.register_hooks()
    meter = SynOpsMeter(snn)
    try:
        with meter.attached():
            out = run()
        data = (x, torch.zeros(len(x), dtype=torch.long))
        theirs = {**SynapticOperations()(model, out, data),
                  "ActivationSparsity": ActivationSparsity()(model, out, data)}
    finally:
        model.cleanup_hooks()
    record = meter.per_step()
    tally = EfficiencyTally(t_pre, T)
    tally.add(record, len(x))
    ours = at_T(tally.summary(meter.layer_sizes, meter.encoders), T)
    exact = {name: float(record[key].sum()) / len(x) for name, key in
             (("Effective_ACs", "acs"), ("Effective_MACs", "macs"), ("Dense", "dense"))}
    for name, value in exact.items():
        assert ours[name] == pytest.approx(value, rel=1e-7), name
    return ours, exact, theirs, record, meter.layer_sizes


DIGITS = 5e-8  # relative: 8 significant digits


@pytest.mark.parametrize("name", ["tiny", "lenet"])
def test_binary_spikes_every_number_agrees_with_neurobench(name):
    snn = _snn(name, 1.0)
    x = torch.rand(B, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    ours, exact, theirs, _, _ = _both(snn, x, 0, lambda: simulate(snn, x, T, chunk=3)[""])
    assert ours["Effective_ACs"] > 0 and ours["Effective_MACs"] > 0
    for key in ("Effective_ACs", "Effective_MACs", "Dense"):
        assert exact[key] == theirs[key], key
        assert ours[key] == pytest.approx(theirs[key], rel=DIGITS), key
    assert ours["SynOps"] == pytest.approx(theirs["Effective_ACs"] + theirs["Effective_MACs"], rel=DIGITS)
    # ours is stored to 8 significant digits
    assert ours["ActivationSparsity"] == pytest.approx(theirs["ActivationSparsity"], abs=1e-7)


@pytest.mark.parametrize("name", ["tiny", "lenet"])
def test_spikes_of_amplitude_theta_are_macs_for_neurobench_acs_for_us(name):
    snn = _snn(name, 0.5)
    x = torch.rand(B, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    ours, exact, theirs, _, _ = _both(snn, x, 0, lambda: simulate(snn, x, T, chunk=3)[""])
    assert ours["Effective_ACs"] > 0
    assert theirs["Effective_ACs"] == 0  # by value: 0 / 0.5 spikes are not binary to NeuroBench
    assert theirs["Effective_MACs"] == exact["Effective_ACs"] + exact["Effective_MACs"]
    assert theirs["Effective_MACs"] == pytest.approx(ours["SynOps"], rel=DIGITS)
    assert theirs["Dense"] == exact["Dense"]
    assert ours["ActivationSparsity"] == pytest.approx(theirs["ActivationSparsity"], abs=1e-7)


def test_srp_prerun_is_in_both_operation_counts_and_only_in_neurobench_sparsity():
    """SRP (tau 2): the pre-run's operations count in both. NeuroBench's sparsity covers every step it saw, ours
    the read-out steps only (docs/efficiency.md, §3): recomputed over all recorded steps, ours is NeuroBench's."""
    tau = 2
    snn = _snn("tiny", 1.0)
    x = torch.rand(B, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    ours, exact, theirs, record, sizes = _both(snn, x, tau, lambda: simulate_srp(snn, x, T, [tau], chunk=3)[tau])
    for key in ("Effective_ACs", "Effective_MACs", "Dense"):
        assert exact[key] == theirs[key], key
    neurons = sum(sizes.values())
    spikes = sum(s.sum() for s in record["spikes"].values())
    over_all_steps = 1 - spikes / (neurons * B * (tau + T))
    assert theirs["ActivationSparsity"] == pytest.approx(over_all_steps, rel=1e-12)
    readout = 1 - sum(s[tau:].sum() for s in record["spikes"].values()) / (neurons * B * T)
    assert ours["ActivationSparsity"] == pytest.approx(readout, abs=1e-7)
    assert not np.isclose(readout, over_all_steps)
