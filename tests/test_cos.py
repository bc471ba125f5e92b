"""COS (snnlib/methods/cos, docs/methods/cos.md): the decision rule on a toy worked by hand, the shift lemma by brute
force, rho = 0 = plain QCFS conversion bit for bit, layer-major = layer-by-layer calibration of a per-step loop (with
residual blocks), fewer offset spikes than plain conversion, the first layer left alone, and the registered method."""
from __future__ import annotations

import copy

import jsonschema
import pytest
import torch
from torch import nn

from snnlib.methods.base import METHODS, Variant
from snnlib.methods.cos import COSMethod, metered_steps
from snnlib.methods.cos.algorithm import (LOWER_TARGET, NONE_SENTINEL, RAISE_TARGET, PhaseA, cos_simulate,
                                          desired_count, initial_potential, phase_a)
from snnlib.methods.qcfs.activation import QCFS
from snnlib.methods.qcfs.conversion import convert
from snnlib.metrics import SynOpsMeter
from snnlib.models.resnet import BasicBlock
from snnlib.neurons import IFNeuron, if_neurons, if_step
from snnlib.engine import per_step_loop, reset, run_steps

ONE = torch.tensor([1.0])


# --- the toy network, worked by hand -----------------------------------------------------------------------------
#
# theta = 1 in every layer, rho = T = 4.
#
# Layer 1: neurons A and B get the constant analog inputs 9/16 and 7/16, from v(0) = 1/2.
#   A: m = 17/16 (spike, v 1/16), 10/16 (v 10/16), 19/16 (spike, v 3/16), 12/16 (v 12/16): train 1,0,1,0, v(4) = 3/4
#   B: m = 15/16 (v 15/16), 22/16 (spike, v 6/16), 13/16 (v 13/16), 20/16 (spike, v 4/16): train 0,1,0,1, v(4) = 1/4
#   Both residuals lie in [0, 1): no shift, v0 stays 1/2 and phase B repeats the same trains.
#
# Layer 2: three neurons fed by the layer-1 spikes s_A, s_B:
#   P: I = s_A - 7/16           -> 9/16, -7/16, 9/16, -7/16    (mean 1/16: desired floor(4/16 + 1/2) = 0 spikes)
#   Q: I = s_B - 7/16           -> -7/16, 9/16, -7/16, 9/16    (mean 1/16: desired 0 spikes)
#   R: I = -3/4 s_A + 9/4 s_B   -> -3/4, 9/4, -3/4, 9/4        (mean 3/4: desired floor(3 + 1/2) = 3 spikes)
# Phase A from v = 1/2:
#   P: m = 17/16 (spike, v 1/16), -6/16, 3/16, -4/16: N = 1, v(4) = -1/4 < 0 with N >= 1 -> lower.
#      m_fire = 17/16 < 1.999, so the shift is max(1, 17/16 - 0.999) = 1: v0 = 1/2 - 1 = -1/2.
#   Q: m = 1/16, 10/16, 3/16, 12/16: N = 0, v(4) = 3/4 in [0, 1) -> v0 = 1/2.
#   R: m = -1/4, 2 (spike, v 1), 1/4, 5/2 (spike, v 3/2): N = 2, v(4) = 3/2 >= 1 -> raise.
#      m_silent = 1/4 > 0.001, so the shift is max(1, 1.001 - 1/4) = 1: v0 = 1/2 + 1 = 3/2.
# Phase B from the new v0 on the same inputs:
#   P: m = 1/16, -6/16, 3/16, -4/16: no spike (the spike of the early positive input is gone), v(4) = -1/4
#   Q: unchanged, no spike, v(4) = 3/4
#   R: m = 3/4, 3 (spike, v 2), 5/4 (spike, v 1/4), 5/2 (spike, v 3/2): train 0,1,1,1, v(4) = 3/2
# Spike counts (P, Q, R): plain (1, 0, 2), COS (0, 0, 3) = the desired (0, 0, 3); v(4) unchanged by the shifts.
# P and Q have the same mean input in opposite orders: only P's order creates an offset spike.

def toy_snn() -> nn.Module:
    net = nn.Sequential(nn.Linear(2, 2, bias=False), QCFS(4, 1.0), nn.Linear(2, 3), QCFS(4, 1.0),
                        nn.Linear(3, 3, bias=False))
    with torch.no_grad():
        net[0].weight.copy_(torch.eye(2))
        net[2].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-0.75, 2.25]]))
        net[2].bias.copy_(torch.tensor([-7 / 16, -7 / 16, 0.0]))
        net[4].weight.copy_(torch.eye(3))
    return convert(net)


TOY_X = torch.tensor([[9 / 16, 7 / 16]])


def test_toy_by_hand():
    snn = toy_snn()
    plain = cos_simulate(snn, TOY_X, 4, 0)[:, 0].T            # rows P, Q, R; columns t = 1..4
    assert plain.tolist() == [[1, 0, 0, 0], [0, 0, 0, 0], [0, 1, 0, 1]]
    record: list[dict] = []
    out = cos_simulate(snn, TOY_X, 4, 4, record=record)[:, 0].T
    assert out.tolist() == [[0, 0, 0, 0], [0, 0, 0, 0], [0, 1, 1, 1]]
    layer1, layer2 = record
    assert layer1["v0"].tolist() == [[0.5, 0.5]]
    assert layer1["n_pre"].tolist() == [[2, 2]] and layer1["v_rho"].tolist() == [[0.75, 0.25]]
    assert layer2["v0"].tolist() == [[-0.5, 0.5, 1.5]]
    assert layer2["n_pre"].tolist() == [[1, 0, 2]]
    assert layer2["n_hat"].tolist() == [[0, 0, 3]]
    assert layer2["n_run"].tolist() == [[0, 0, 3]]
    assert layer2["v_rho"].tolist() == [[-0.25, 0.75, 1.5]]
    assert layer2["v_end"].tolist() == [[-0.25, 0.75, 1.5]]   # the shift lemma: residuals unchanged
    # the plain neuron on these inputs is the same run without the decision
    plain_record: list[dict] = []
    cos_simulate(snn, TOY_X, 4, 4, calibrate=False, record=plain_record)
    assert plain_record[1]["v0"].tolist() == [[0.5, 0.5, 0.5]] and plain_record[1]["n_run"].tolist() == [[1, 0, 2]]
    assert all(n.v is None for n in if_neurons(snn))          # no state left behind


def test_toy_outputs_do_not_depend_on_T():
    snn = toy_snn()
    four = cos_simulate(snn, TOY_X, 4, 4)
    assert torch.equal(cos_simulate(snn, TOY_X, 9, 4)[:4], four)
    # T < rho: max(T, rho) steps are simulated, the first T returned
    assert torch.equal(cos_simulate(snn, TOY_X, 2, 4), four[:2])
    assert cos_simulate(snn, TOY_X, 0, 4).shape[0] == 0


def test_saturated_neuron_gets_the_sentinel():
    # constant input 3/2: m = 2, 3, 4, 5 with a spike every step, v(4) = 5/2 >= 1 and no silent step, so m_silent
    # is the sentinel -1000 and the shift is max(1, 1.001 + 1000) = 1001.001: v0 = 1001.501, and phase B fires
    # at every step, ending at 1001.501 + 4 * 3/2 - 4 = 1003.501
    snn = convert(nn.Sequential(nn.Linear(1, 1, bias=False), QCFS(4, 1.0)))
    with torch.no_grad():
        snn[0].weight.fill_(1.0)
    record: list[dict] = []
    out = cos_simulate(snn, torch.tensor([[1.5]]), 4, 4, record=record)
    assert out.flatten().tolist() == [1, 1, 1, 1]
    expected_v0 = torch.tensor(0.5) + (torch.tensor(RAISE_TARGET) + NONE_SENTINEL)
    assert record[0]["v0"].item() == expected_v0.item()
    assert record[0]["v_end"].item() == pytest.approx(1003.501, abs=1e-4)
    assert (NONE_SENTINEL, LOWER_TARGET, RAISE_TARGET) == (1000.0, 0.999, 1.001)


def test_enlarged_shifts_in_units_of_theta():
    # theta = 2. Lowering: a neuron whose only spike had m = 5 (2.5 theta): a theta shift keeps that spike, so the
    # shift is 2.5 - 0.999 = 1.501 theta. Raising: every silent step had m = -1 (-0.5 theta): shift 1.501 theta.
    # A silent neuron with a negative residual is not lowered (N = 0); a residual in [0, theta) is not moved.
    theta = torch.tensor([2.0])
    stats = PhaseA(count=torch.tensor([1.0, 2.0, 0.0, 1.0]), v_rho=torch.tensor([-0.5, 2.5, -3.0, 1.0]),
                   m_fire=torch.tensor([5.0, 2.0, float("inf"), 3.0]),
                   m_silent=torch.tensor([0.5, -1.0, 0.0, 1.0]))
    v0 = initial_potential(stats, theta)
    assert v0.tolist() == pytest.approx([0.5 - 1.501, 0.5 + 1.501, 0.5, 0.5])
    assert initial_potential(stats, theta, base=0.25).tolist() == pytest.approx([0.25 - 1.501, 0.25 + 1.501, 0.25, 0.25])


# --- the shift lemma and the two detection tests, by brute force -------------------------------------------------

def trace(inputs: torch.Tensor, theta: torch.Tensor, v0: torch.Tensor):
    """Per step: pre-reset potentials m and spikes s [rho, n], and the final potential, via neurons.if_step."""
    v, ms, ss = v0.expand_as(inputs[0]).clone(), [], []
    for x in inputs:
        ms.append(v + x)
        v, s = if_step(v, x, theta)
        ss.append(s)
    return torch.stack(ms), torch.stack(ss), v


@pytest.mark.parametrize("theta_value,rho", [(1.0, 4), (2.0, 6)])
def test_shift_lemma_and_detection_brute_force(theta_value, rho):
    g = torch.Generator().manual_seed(int(theta_value * 10 + rho))
    theta = torch.tensor([theta_value])
    # dyadic inputs in [-2 theta, 3 theta] (multiples of theta / 16): every potential is exact in float32
    inputs = torch.randint(-32, 49, (rho, 40000), generator=g).float() / 16 * theta
    half = 0.5 * theta
    m, s, v = trace(inputs, theta, half)
    n = s.sum(0)
    n_hat = desired_count(inputs.sum(0), theta, rho)
    psi = n - n_hat

    # lowering v0 by exactly theta, where some spiking step had m < 2 theta: the first such spike disappears, all
    # other steps keep their spikes, and v(rho) is unchanged
    _, s_low, v_low = trace(inputs, theta, half - theta)
    weak = (s == 1) & (m < 2 * theta)
    cond = weak.any(0)
    first = torch.where(cond, weak.float().argmax(0), -1)
    steps = torch.arange(rho).unsqueeze(1)
    assert cond.sum() > 1000
    assert torch.equal((s - s_low)[:, cond], (steps == first).float()[:, cond])
    assert torch.equal(v_low[cond], v[cond])

    # raising v0 by exactly theta, where some silent step had m >= 0: the first such step gains a spike
    _, s_up, v_up = trace(inputs, theta, half + theta)
    strong = (s == 0) & (m >= 0)
    cond = strong.any(0)
    first = torch.where(cond, strong.float().argmax(0), -1)
    assert cond.sum() > 1000
    assert torch.equal((s_up - s)[:, cond], (steps == first).float()[:, cond])
    assert torch.equal(v_up[cond], v[cond])

    # the detection tests are exact: v(rho) < 0 with a spike <=> one spike too many; v(rho) >= theta <=> one spike
    # too few, or saturated (a spike at every step, as desired, with v(rho) >= theta)
    assert torch.equal((v < 0) & (n >= 1), psi >= 1)
    assert torch.equal(v >= theta, (psi <= -1) | ((n == rho) & (n_hat == rho) & (v >= theta)))
    assert (psi.abs() == 1).sum() > 1000 and (psi.abs() >= 2).any()

    # the decision, then a rerun from it: where the shift is exactly theta, one offset spike is gone
    stats = phase_a(inputs, theta, half)
    assert torch.equal(stats.count, n) and torch.equal(stats.v_rho, v)
    v0 = initial_potential(stats, theta)
    _, s_cal, v_cal = trace(inputs, theta, v0 * theta)
    psi_cal = s_cal.sum(0) - n_hat
    unit = (v0 - 0.5).abs() <= 1
    assert torch.equal(psi_cal[unit], psi[unit] - torch.sign(psi[unit]))
    assert torch.equal(v_cal[unit], v[unit])
    assert psi_cal.abs().sum() < psi.abs().sum() / 3


# --- whole networks ----------------------------------------------------------------------------------------------

def dyadic_mlp(seed: int = 0, widths=(12, 48, 48, 48, 10), scale: float = 0.35) -> nn.Module:
    """Random MLP whose weights and biases are multiples of 1/64 (theta = 1): with inputs on a 1/16 grid every
    current and potential is exact in float32, so the shift lemma holds bit for bit inside the network."""
    g = torch.Generator().manual_seed(seed)
    layers: list[nn.Module] = []
    for i in range(len(widths) - 1):
        lin = nn.Linear(widths[i], widths[i + 1])
        with torch.no_grad():
            lin.weight.copy_(torch.round(torch.randn(lin.weight.shape, generator=g) * scale * 64) / 64)
            lin.bias.copy_(torch.round((torch.randn(lin.bias.shape, generator=g) * 0.2 + 0.1) * 64) / 64)
        layers.append(lin)
        if i < len(widths) - 2:
            layers.append(QCFS(4, 1.0))
    return convert(nn.Sequential(*layers))


def small_resnet() -> nn.Module:
    """Stem + two residual blocks (one with a projection shortcut): 5 IF layers, 2 of them after an addition."""
    torch.manual_seed(0)
    act = lambda: QCFS(4, 1.0)  # noqa: E731
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), act(),
                        BasicBlock(8, 8, 1, act), BasicBlock(8, 12, 2, act),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(12, 5))
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.mul_(2.0)   # livelier than the default init: some neurons of every layer fire
    return convert(net.eval())


def test_rho_zero_is_plain_conversion_bit_for_bit():
    for snn, x in ((small_resnet(), torch.rand(2, 3, 6, 6)), (dyadic_mlp(), torch.rand(5, 12))):
        out = cos_simulate(snn, x, 6, 0)
        reset(snn)
        assert torch.equal(out, run_steps(snn, x, 6))
        reset(snn)
        assert torch.equal(out, per_step_loop(snn, x, 6))
        assert out.abs().sum() > 0


class _StepIF(nn.Module):
    """Reference IF for a per-step loop: one if_step per call, records its inputs, starts at v0 (units of theta)."""

    def __init__(self, neuron: IFNeuron):
        super().__init__()
        self.theta, self.v0 = neuron.theta.clone(), None
        self.v, self.inputs = None, []

    def forward(self, x):
        if self.v is None:
            self.v = (torch.full_like(x, 0.5) if self.v0 is None else self.v0.clone()) * self.theta
        self.inputs.append(x)
        self.v, s = if_step(self.v, x, self.theta)
        return s * self.theta


def layer_by_layer_reference(snn: nn.Module, x: torch.Tensor, t_run: int, rho: int) -> tuple[torch.Tensor, list]:
    """COS as the algorithm states it, time-major: for each IF layer in order, rerun the network for rho steps with
    the earlier layers calibrated, calibrate this layer on what it received; then run t_run steps."""
    net = copy.deepcopy(snn)

    def swap(module):
        for name, child in module.named_children():
            if isinstance(child, IFNeuron):
                setattr(module, name, _StepIF(child))
            else:
                swap(child)
    swap(net)
    layers = [m for m in net.modules() if isinstance(m, _StepIF)]
    for layer in layers:
        for n in layers:
            n.v, n.inputs = None, []
        for _ in range(rho):
            net(x)
        seq = torch.stack(layer.inputs)
        layer.v0 = initial_potential(phase_a(seq, layer.theta, 0.5 * layer.theta), layer.theta)
    for n in layers:
        n.v = None
    return torch.stack([net(x) for _ in range(t_run)]), [n.v0 for n in layers]


def test_layer_major_equals_layer_by_layer_calibration_with_residual_blocks():
    snn, x = small_resnet(), torch.rand(2, 3, 6, 6)
    record: list[dict] = []
    out = cos_simulate(snn, x, 6, 4, record=record)
    ref, v0s = layer_by_layer_reference(snn, x, 6, 4)
    assert torch.equal(out, ref)
    assert [r["layer"] for r in record] == [name for name, m in snn.named_modules() if isinstance(m, IFNeuron)]
    for r, v0 in zip(record, v0s):
        assert torch.equal(r["v0"], v0)
    # the test means something: the neurons after each residual addition do move
    post_add = [r for r in record if r["layer"].endswith(".act")]
    assert len(post_add) == 2 and all((r["v0"] != 0.5).any() for r in post_add)
    assert not torch.equal(out, cos_simulate(snn, x, 6, 0))


def test_cos_removes_offset_spikes_of_plain_conversion():
    snn = dyadic_mlp()
    x = torch.randint(0, 17, (64, 12), generator=torch.Generator().manual_seed(1)) / 16
    rho = 4
    plain: list[dict] = []
    cos: list[dict] = []
    cos_simulate(snn, x, rho, rho, calibrate=False, record=plain)
    cos_simulate(snn, x, rho, rho, record=cos)
    offsets = lambda r: (r["n_run"] - r["n_hat"]).abs().sum().item()  # noqa: E731
    assert offsets(plain[0]) == offsets(cos[0]) == 0     # constant input: no offset spike to fix
    for p, c in zip(plain[1:], cos[1:]):
        assert offsets(p) > 50 and offsets(c) < offsets(p) / 20
        # per neuron, on the calibrated inputs: a shift of exactly theta moves exactly one offset spike
        psi_pre, psi_run = c["n_pre"] - c["n_hat"], c["n_run"] - c["n_hat"]
        unit = (c["v0"] - 0.5).abs() <= 1
        assert torch.equal(psi_run[unit], psi_pre[unit] - torch.sign(psi_pre[unit]))
        assert torch.equal(c["v_end"][unit], c["v_rho"][unit])


def test_first_layer_keeps_half_threshold_unless_saturated():
    for snn, x in ((dyadic_mlp(), torch.rand(32, 12) * 2 - 0.5), (small_resnet(), torch.rand(2, 3, 6, 6) * 3)):
        record: list[dict] = []
        cos_simulate(snn, x, 4, 4, record=record)
        first = record[0]
        saturated = first["v0"] != 0.5
        assert saturated.any() and (~saturated).any()
        assert (first["n_pre"][saturated] == 4).all() and (first["v_rho"][saturated] >= 1).all()
        assert (first["v0"][saturated] > NONE_SENTINEL).all()
        assert torch.equal(first["n_pre"], first["n_hat"])  # constant input: plain IF = QCFS at rho levels


# --- the registered method ---------------------------------------------------------------------------------------

def test_method_registration_and_variants():
    method = METHODS["cos"]
    assert isinstance(method, COSMethod)
    assert (method.recipe, method.conversion, method.doc) == ("qcfs", "qcfs", "docs/methods/cos.md")
    schema = method.settings_schema
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["properties"]["rho"]["default"] == [4]
    validator = jsonschema.Draft202012Validator(schema)
    assert validator.is_valid({"rho": [4, 8]})
    for bad in ({"rho": [0]}, {"rho": []}, {"rho": [4, 4]}, {"rho": [2.5]}, {"tau": [4]}):
        assert not validator.is_valid(bad), bad
    assert method.variants({}, {"rho": [8, 4]}) == [
        Variant("rho4", "SNN, COS rho=4", t_pre=4, params={"rho": 4}),
        Variant("rho8", "SNN, COS rho=8", t_pre=8, params={"rho": 8})]


def test_method_run_and_metered_steps():
    method = METHODS["cos"]
    snn, x = dyadic_mlp(), torch.rand(3, 12)
    settings = {"rho": [2, 8]}
    runs = method.run(snn, x, 5, {}, settings, False)
    assert set(runs) == {"rho2", "rho8"} and all(r.steps is None for r in runs.values())
    for rho in (2, 8):
        assert torch.equal(runs[f"rho{rho}"].outputs, cos_simulate(snn, x, 5, rho))
    assert runs["rho2"].outputs.shape == (5, 3, 10)

    meter = SynOpsMeter(snn)
    with meter.attached():
        metered = method.run(snn, x, 5, {}, settings, True)
    recorded = len(meter.per_step()["acs"])
    assert recorded == max(5, 2) + max(5, 8)                 # one layer-major run per rho, max(T, rho) steps each
    assert metered["rho2"].steps == metered_steps(2, 5) == [0, 1, 0, 1, 2, 3, 4]
    assert metered["rho8"].steps == metered_steps(8, 5, offset=5) == [5 + t for t in range(8)] + [5, 6, 7, 8, 9]
    for key in runs:
        assert torch.equal(metered[key].outputs, runs[key].outputs)
    # phase B's spikes are what the meter sees: per step, they equal the emitted outputs of every layer
    spikes = meter.per_step()["spikes"]
    assert sum(v.sum() for v in spikes.values()) > 0

    own = SynOpsMeter(snn)                                     # a meter object: the method attaches it itself
    again = method.run(snn, x, 5, {}, {"rho": [2]}, own)
    assert len(own.per_step()["acs"]) == 5 and again["rho2"].steps == metered_steps(2, 5)
