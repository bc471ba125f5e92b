import numpy as np
import pytest
import torch
from torch import nn

from snnlib.methods.qcfs.activation import QCFS
from snnlib.methods.qcfs.conversion import convert
from snnlib.efficiency import ROW_COLUMNS, EfficiencyTally, at_T
from snnlib.metrics import OpCounter, SynOpsMeter, activation_sparsity, energy_pj, firing_rate, layer_ops
from snnlib.models import create_model
from snnlib.engine import reset, run_steps
from snnlib.engine import simulate
from snnlib.methods.srp.algorithm import simulate_srp, srp_branches


def test_linear_layer_ops_hand_computed():
    fc = nn.Linear(3, 2, bias=False)
    with torch.no_grad():
        fc.weight.copy_(torch.tensor([[1.0, 0.0, 2.0], [0.0, 0.0, 3.0]]))
    # non-zero inputs 0 and 2: pairs (0, row 0), (2, row 0), (2, row 1) -> 3 effective of 6 dense
    assert layer_ops(fc, torch.tensor([[0.7, 0.0, 0.7]])) == (6.0, 3.0)
    assert layer_ops(fc, torch.tensor([[0.5, 0.2, 0.0]])) == (6.0, 1.0)


def test_conv_layer_ops_hand_computed():
    conv = nn.Conv2d(1, 1, 2, bias=False)
    with torch.no_grad():
        conv.weight.fill_(1.0)
    x = torch.zeros(1, 1, 3, 3)
    x[0, 0, 1, 1] = 1.0  # the centre pixel lies under all four 2x2 windows
    assert layer_ops(conv, x) == (16.0, 4.0)
    x[0, 0, 0, 0] = 1.0  # a corner pixel lies under one window
    assert layer_ops(conv, x) == (16.0, 5.0)


def test_two_layer_snn_counts_for_given_spike_trains():
    # input (analog, 2) -> Linear 2x3 (all weights 1) -> IF (theta 1) -> Linear 3x1 (weights 1, 0, 1)
    net = nn.Sequential(nn.Linear(2, 3, bias=False), QCFS(4, 1.0), nn.Linear(3, 1, bias=False))
    with torch.no_grad():
        net[0].weight.fill_(1.0)
        net[2].weight.copy_(torch.tensor([[1.0, 0.0, 1.0]]))
    snn = convert(net)
    counter = OpCounter(snn)
    with counter.counting():
        for x in ([0.6, 0.0], [0.0, 0.0], [0.25, 0.25]):  # currents 0.6, 0, 0.5 into every hidden neuron
            snn(torch.tensor([x]))
    # v0 = 0.5: step 1 v = 1.1 -> all 3 fire (v .1); step 2 none (v .1); step 3 v = .6 none.
    # layer 1 (analog input, always MACs): 3, 0, 6 effective pairs; layer 2 (spikes, ACs): 3 spikes x their
    # non-zero weights (1 + 0 + 1) = 2 at step 1 only.
    assert counter.totals == {"dense": 3 * (6 + 3), "acs": 2.0, "macs": 9.0}
    # a uniform analog input still counts as MACs: the decision is by origin, not by value
    with counter.counting():
        snn(torch.tensor([[0.3, 0.3]]))
    assert counter.totals["macs"] == 9.0 + 6


def test_energy_uses_the_stated_cost_table():
    assert energy_pj(acs=10, macs=2) == 10 * 0.9 + 2 * 4.6


def test_firing_rate_and_sparsity_on_hand_made_spikes():
    spikes = torch.tensor([[1.0, 0.0, 0.0, 1.0], [0.0, 0.0, 0.0, 1.0]])
    assert activation_sparsity(spikes) == 5 / 8
    assert firing_rate(torch.tensor([3.0, 1.0, 0.0, 0.0]), steps=4) == 1 / 4


# --- SynOpsMeter: per-step counts, checked by hand and against the brute-force OpCounter ---------------------

def _two_layer_snn():
    net = nn.Sequential(nn.Linear(2, 3, bias=False), QCFS(4, 1.0), nn.Linear(3, 1, bias=False))
    with torch.no_grad():
        net[0].weight.fill_(1.0)
        net[2].weight.copy_(torch.tensor([[1.0, 0.0, 1.0]]))
    return convert(net)


def test_meter_per_step_counts_hand_computed():
    snn = _two_layer_snn()
    meter = SynOpsMeter(snn)
    with meter.attached():
        for x in ([0.6, 0.0], [0.0, 0.0], [0.25, 0.25]):  # as in the OpCounter test above
            snn(torch.tensor([x]))
    got = meter.per_step()
    assert got["macs"].tolist() == [3.0, 0.0, 6.0]   # analog input: non-zero entries x 3 outgoing weights
    assert got["acs"].tolist() == [2.0, 0.0, 0.0]    # 3 spikes at step 1, fan-outs 1, 0, 1
    assert got["dense"].tolist() == [9.0, 9.0, 9.0]
    assert list(got["spikes"].values())[0].tolist() == [3.0, 0.0, 0.0]
    assert meter.layer_sizes == {"1": 3}


def test_meter_splits_a_multi_step_call_by_step():
    snn = _two_layer_snn()
    reset(snn)
    meter = SynOpsMeter(snn)
    x = torch.tensor([[0.6, 0.0], [0.25, 0.25]])  # two images, 4 steps in one call
    with meter.attached():
        run_steps(snn, x, 4, chunk=4)
    got = meter.per_step()
    # image 1: current 0.6 -> v 1.1 fire, .7, 1.3 fire, .9 ; image 2: current 0.5 -> 1.0 fire, .5, 1.0 fire, .5
    assert list(got["spikes"].values())[0].tolist() == [6.0, 0.0, 6.0, 0.0]
    assert got["acs"].tolist() == [4.0, 0.0, 4.0, 0.0]
    assert got["macs"].tolist() == [9.0] * 4 and got["dense"].tolist() == [18.0] * 4


def _random_snn(name, ch, size, seed=0):
    torch.manual_seed(seed)
    ann = create_model(name, num_classes=10, in_channels=ch, image_size=size, act=lambda: QCFS(4, 1.0))
    for q in (m for m in ann.modules() if isinstance(m, QCFS)):
        q.lam.data.fill_(0.5)
    return convert(ann.eval())


@pytest.mark.parametrize("name,ch,size", [("lenet", 1, 28), ("vgg_mini", 1, 28), ("resnet20", 3, 32)])
def test_meter_equals_brute_force_counter(name, ch, size):
    snn = _random_snn(name, ch, size)
    with torch.no_grad():  # some zero weights, so that the non-zero-weight pattern matters
        first = next(m for m in snn.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))
        first.weight[0].zero_()
    x = torch.rand(3, ch, size, size)
    meter, counter = SynOpsMeter(snn), OpCounter(snn)
    with meter.attached(), counter.counting():
        out = simulate_srp(snn, x, 5, [2], chunk=3)[2]
    got = meter.per_step()
    assert len(got["acs"]) == 2 + 5  # pre-run, then the masked read-out
    for key in ("acs", "macs", "dense"):
        assert got[key].sum() == pytest.approx(counter.totals[key], rel=1e-12), key
    assert got["acs"].sum() > 0 and got["macs"].sum() > 0
    assert torch.equal(out, simulate_srp(snn, x, 5, [2], chunk=3)[2])  # metering does not change results


def test_steps_select_each_keys_counts_from_a_shared_simulation():
    """One metered simulation of QCFS and SRP(tau 2, 5): the meter's per-step counts at `steps[key]` are what a
    separate metered simulation of that key alone counts."""
    snn = _random_snn("vgg_mini", 1, 28)
    x = torch.rand(2, 1, 28, 28)
    meter = SynOpsMeter(snn)
    with meter.attached():
        shared = simulate(snn, x, 4, srp_branches([2, 5], "exact"), chunk=3)
        together = meter.take()
        assert len(together["acs"]) == 5 + 2 * 4  # plain run to the latest fork, then two masked runs
        for tau, key in ((0, ""), (2, "tau2"), (5, "tau5")):
            alone = simulate_srp(snn, x, 4, [tau], "exact", chunk=3)[tau]
            separate = meter.take()
            steps = shared.steps[key]
            assert len(steps) == tau + 4 and torch.equal(shared[key], alone), key
            for kind in ("acs", "macs", "dense"):
                assert np.array_equal(together[kind][steps], separate[kind]), (key, kind)
            for layer, counts in separate["spikes"].items():
                assert np.array_equal(together["spikes"][layer][steps], counts), (key, layer)
    assert together["acs"].sum() > 0


def test_tally_and_row_columns_hand_computed():
    # 1 pre-run step and 3 read-out steps, two batches of 2 and 1 images; one hidden layer of 4 neurons
    # dense: 10 pairs per image and step
    steps = lambda a, m, s, n: {"acs": np.array(a, float), "macs": np.array(m, float), "dense": np.full(4, 10.0 * n),
                                "spikes": {"h": np.array(s, float), "enc": np.ones(4)}}
    tally = EfficiencyTally(1, 3)
    tally.add(steps([5, 1, 2, 3], [7, 7, 7, 7], [8, 2, 4, 6], 2), 2)
    tally.add(steps([1, 0, 0, 3], [3, 3, 3, 3], [1, 1, 1, 1], 1), 1)
    eff = tally.summary({"h": 4, "enc": 1}, exclude={"enc"})
    assert eff["prerun"] == {"acs": 2.0, "macs": 10 / 3, "dense": 10.0}
    assert eff["run_cumulative"]["acs"] == pytest.approx([1 / 3, 1.0, 3.0])
    assert eff["ann_macs"] == 10.0
    assert eff["firing_rate"] == pytest.approx([3 / 12, 8 / 24, 15 / 36])
    costs = {"mac_pj": 2.0, "ac_pj": 1.0, "source": "test"}
    row = at_T(eff, 2, costs)
    acs, macs = 2.0 + 1.0, 10 / 3 + 20 / 3
    assert row["acs"] == pytest.approx(acs) and row["macs"] == pytest.approx(macs)
    assert row["dense_ops"] == pytest.approx(10.0 + 20.0)
    assert row["energy_uj"] == pytest.approx((acs * 1.0 + macs * 2.0) * 1e-6)
    assert row["energy_ratio"] == pytest.approx((acs + 2 * macs) / (10.0 * 2.0))
    assert row["activation_sparsity"] == pytest.approx(1 - 8 / 24)
    assert row["layer_firing_rates"] == f"{8 / 24:.4g}"
    # NeuroBench's names: the same numbers, and SynOps = Effective_ACs + Effective_MACs
    assert (row["Effective_ACs"], row["Effective_MACs"], row["Dense"], row["ActivationSparsity"]) == \
        (row["acs"], row["macs"], row["dense_ops"], row["activation_sparsity"])
    assert row["SynOps"] == pytest.approx(acs + macs)
    assert set(ROW_COLUMNS) <= set(row)
    assert np.isnan(at_T(None, 2)["acs"]) and np.isnan(at_T(None, 2)["SynOps"])


def test_srp_prerun_operations_are_counted_hand_computed():
    net = nn.Sequential(nn.Linear(2, 2, bias=False), QCFS(4, 1.0), nn.Linear(2, 1, bias=False), QCFS(4, 1.0))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
        net[2].weight.copy_(torch.tensor([[1.0, -1.0]]))
    snn = convert(net)
    x = torch.tensor([[0.5, 0.5]])  # both hidden neurons fire at t = 1 and t = 3 (v: 1.0 -> 0, .5, 1.0 -> 0)
    for tau in (0, 2):
        meter = SynOpsMeter(snn)
        with meter.attached():
            simulate_srp(snn, x, 4, [tau], chunk=2)
        tally = EfficiencyTally(tau, 4)
        tally.add(meter.per_step(), 1)
        eff = tally.summary(meter.layer_sizes)
        # read-out: layer 1 analog, 2 non-zero weights -> 2 MACs per step; layer 2: 2 spikes x 1 weight at t=1,3
        assert eff["run_cumulative"]["macs"] == [2, 4, 6, 8] and eff["run_cumulative"]["acs"] == [2, 2, 4, 4]
        assert eff["run_cumulative"]["dense"] == [6, 12, 18, 24] and eff["ann_macs"] == 6
        # pre-run: 2 steps, 2 MACs each; the hidden layer spikes at t = 1 only
        assert eff["prerun"] == ({"acs": 0, "macs": 0, "dense": 0} if tau == 0 else {"acs": 2, "macs": 4, "dense": 12})
        row = at_T(eff, 4)
        assert row["acs"] == 4 + eff["prerun"]["acs"] and row["macs"] == 8 + eff["prerun"]["macs"]


@pytest.mark.parametrize("channels_last", [False, True])
def test_nonzero_counts_match_brute_force_in_both_layouts(channels_last):
    """The meter's fast counts (float sums of a 0/1 indicator) equal plain counting, with -0.0 counted as zero
    and negative inputs (MAC layers) counted as non-zero."""
    from snnlib.metrics import _nonzero_per_position, _nonzero_per_step
    g = torch.Generator().manual_seed(0)
    k, n, c, h, w = 3, 5, 4, 6, 7
    x = torch.randn(k * n, c, h, w, generator=g)
    x[torch.rand(x.shape, generator=g) < 0.6] = 0.0
    x[torch.rand(x.shape, generator=g) < 0.1] = -0.0
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    nz = (x != 0).view(k, n, c, h * w)
    assert torch.equal(_nonzero_per_position(x, k), nz.sum(dim=(1, 2)).to(torch.float64))
    assert torch.equal(_nonzero_per_step(x, k), nz.sum(dim=(1, 2, 3)).to(torch.float64))
