import torch
from torch import nn

from snnlib.methods.qcfs.activation import QCFS
from snnlib.methods.qcfs.conversion import convert
from snnlib.neurons import if_neurons
from snnlib.methods.srp.algorithm import residual_mask, simulate_srp


def test_reference_rule_keeps_only_positive_residuals():
    theta = torch.tensor([1.0])
    v = torch.tensor([-0.5, 0.0, 0.0005, 0.002, 0.7])
    count = torch.tensor([1.0, 0.0, 2.0, 0.0, 3.0])
    assert residual_mask(v, theta, count, "reference").tolist() == [0, 0, 0, 1, 1]


def test_exact_rule_silences_only_ann_zero_snn_positive():
    # silence iff n >= 1 and v < (1 - n) theta
    theta = torch.tensor([2.0])
    v = torch.tensor([-0.1, -0.1, -2.5, -1.5, -0.1, 0.5])
    n = torch.tensor([1.0, 0.0, 2.0, 2.0, 2.0, 1.0])
    assert residual_mask(v, theta, n, "exact").tolist() == [0, 1, 0, 1, 1, 1]


def toy_network():
    """2 inputs -> 2 hidden IF neurons (theta 1) -> 1 linear output, hand-chosen weights."""
    net = nn.Sequential(nn.Linear(2, 2, bias=False), QCFS(4, 1.0), nn.Linear(2, 1, bias=False))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
        net[2].weight.copy_(torch.tensor([[1.0, 1.0]]))
    return convert(net)


def test_srp_mask_on_hand_worked_toy_network():
    snn = toy_network()
    # constant inputs: neuron A gets 0.75 (fires at t=1: .5+.75=1.25 -> .25, t=2: 1.0 -> 0.0), so after tau=2
    # v_A = 0.0 -> the reference rule silences it although its rate is 1; neuron B gets -0.25: v_B = 0 -> silenced.
    x = torch.tensor([[0.75, -0.25]])
    out = simulate_srp(snn, x, 4, [0, 2])
    assert out[0][:, 0, 0].tolist() == [1.0, 1.0, 0.0, 1.0]      # plain: A fires at t=1,2,4 (v .25,0,.75,.5)
    assert out[2][:, 0, 0].tolist() == [0.0, 0.0, 0.0, 0.0]      # SRP tau=2: A silenced by the reference rule
    # exact rule: A fired twice with v = 0 >= (1 - 2) * 1, so its ANN output is positive: never silenced
    out_exact = simulate_srp(snn, x, 4, [2], rule="exact")
    assert torch.equal(out_exact[2], out[0])


def test_tau_zero_is_plain_qcfs_bit_for_bit():
    torch.manual_seed(3)
    net = nn.Sequential(nn.Linear(6, 8), QCFS(4, 1.0), nn.Linear(8, 8), QCFS(4, 1.0), nn.Linear(8, 3))
    snn = convert(net)
    x = torch.randn(16, 6)
    a = simulate_srp(snn, x, 10, [0])[0]
    b = simulate_srp(snn, x, 10, [0, 3])[0]
    assert torch.equal(a, b)
    assert all(n.mask is None for n in if_neurons(snn))  # masks do not leak into later runs


def test_srp_reads_out_to_its_own_t_max_and_the_rest_of_the_experiment_to_eval_t_max():
    """methods.srp.T_max shortens only SRP's read-out; without it SRP runs to eval.T_max, and older configs keep
    their settings (and hashes) because the key has no default."""
    import yaml
    from pathlib import Path

    from snnlib.config import validate
    from snnlib.methods import get_method
    raw = yaml.safe_load((Path(__file__).resolve().parents[1] / "config" / "proxy_cpu.yaml").read_text())
    exp = validate(raw, "proxy_cpu.yaml")["experiments"]["proxy_resnet20_L4"]
    assert get_method("srp").t_max(exp, exp["methods"]["srp"]) == 8
    assert get_method("qcfs").t_max(exp, exp["methods"]["qcfs"]) == exp["eval"]["T_max"] == 16
    del raw["defaults"]["methods"]["srp"]["T_max"]
    exp = validate(raw, "proxy_cpu.yaml")["experiments"]["proxy_resnet20_L4"]
    assert "T_max" not in exp["methods"]["srp"] and get_method("srp").t_max(exp, exp["methods"]["srp"]) == 16
