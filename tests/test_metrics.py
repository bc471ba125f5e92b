import torch
from torch import nn

from snnlib.activations import QCFS
from snnlib.conversion import convert
from snnlib.metrics import OpCounter, activation_sparsity, energy_pj, firing_rate, layer_ops


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
