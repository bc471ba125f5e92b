import torch
from torch import nn

from snnlib.methods.qcfs.activation import QCFS
from snnlib.methods.qcfs.conversion import convert
from snnlib.unevenness import CATEGORIES, analyse, category_shares, classify, ideal_output


def test_classify_hand_made_pairs():
    ideal = torch.tensor([0.0, 0.0, 0.5, 0.5, 1.0, 0.25, 0.75])
    phi = torch.tensor([0.0, 0.25, 0.0, 0.5, 0.5, 0.75, 0.5])
    names = [CATEGORIES[c] for c in classify(ideal, phi)]
    assert names == ["match", "ann0_snn_pos", "ann_pos_snn0", "match", "snn_under", "snn_over", "snn_under"]
    shares = category_shares(classify(ideal, phi))
    assert shares["match"] == 2 / 7 and abs(sum(shares.values()) - 1) < 1e-12


def test_ideal_output_is_qcfs_with_L_equal_T():
    # theta 1, T 4: z = 0.1 -> floor(0.9) = 0; 0.2 -> floor(1.3)/4; 0.9 -> floor(4.1)/4 = 1; 2.0 -> clipped at 1
    z = torch.tensor([-1.0, 0.1, 0.2, 0.9, 2.0])
    assert ideal_output(z, torch.tensor([1.0]), 4).tolist() == [0.0, 0.0, 0.25, 1.0, 1.0]


def test_uneven_arrival_is_detected_and_constant_input_is_exact():
    # Layer 1 sees the constant analog input: no unevenness, ever. Layer 2 gets +1 then -1 from a fast and a slow
    # neuron: mean input 0 (ideal 0) but it fires at t=1 -> "ann0_snn_pos" (the SRP paper's main category).
    net = nn.Sequential(nn.Linear(2, 2, bias=False), QCFS(4, 1.0), nn.Linear(2, 1, bias=False), QCFS(4, 1.0))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
        net[2].weight.copy_(torch.tensor([[1.0, -1.0]]))
    snn = convert(net)
    # input 0.5 to both: both first-layer neurons fire at t=1 (.5+.5 = 1.0), then every 2nd step.
    # Break the symmetry: neuron A gets 0.5 (fires t=1,3), neuron B gets 0.45 (fires t=2? .95, 1.4 -> yes t=2)
    x = torch.tensor([[0.5, 0.45]])
    rows = analyse(snn, x, 2, [2])["layers"]
    layer1 = next(r for r in rows if r["layer"] == 0)
    layer2 = next(r for r in rows if r["layer"] == 1)
    assert layer1["match"] == 1.0
    # layer 2: t=1 input +1 (v .5 -> 1.5, spike), t=2 input -1: mean input 0 -> ideal 0, emitted 1 spike
    assert layer2["ann0_snn_pos"] == 1.0
