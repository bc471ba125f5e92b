"""CQ training and transfer (Yan, Zhou & Wong, AAAI 2021; docs/methods/cq.md).

References are hand-worked values, exact rational arithmetic (fractions.Fraction) or brute-force loops."""
from __future__ import annotations

import copy
import json
import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from torch import nn

from snnlib.config import REPO_ROOT, ConfigError, experiment_hash, validate
from snnlib.conversion import ConversionError, fold_batchnorm
from snnlib.methods.cq.activation import (GRID_GUARD, ClampQuantize, GridQuantizer, clamp_quantize, configure_cq, grid_levels,
                       quantize, set_cq_stage)
from snnlib.methods.cq.conversion import ann_levels, ann_view, convert_cq, count_bounds, spike_counts, spiking_layer_names
from snnlib.methods.cq.training import CQSchedule, train_cq
from snnlib.methods.cq.encoding import SpikeEncoder, encoded_count, if_encode
from snnlib.models import MODELS, create_model
from snnlib.neurons import IFNeuron
from snnlib.report import markdown_report, result_rows
from snnlib.engine import reset, run_steps
from snnlib.methods.cq.weight_quant import layer_scale, max_code, num_levels, quantize_tensor, quantize_weights

T_VALUES = (1, 7, 100, 1000)


def grid_values(T: int) -> torch.Tensor:
    """fl32(k / T) for k = 0..T: the float32 values that *mean* the grid points (about half lie below k / T)."""
    return (torch.arange(T + 1, dtype=torch.float64) / T).float()


def off_grid_values(T: int, n: int = 200, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """float32 x = (k + u) / T with u in [0.02, 0.98] (well away from the grid), and the exact floor(T x)."""
    g = torch.Generator().manual_seed(seed)
    k = torch.randint(0, T, (n,), generator=g).double()
    u = 0.02 + 0.96 * torch.rand(n, generator=g, dtype=torch.float64)
    x = ((k + u) / T).float()
    exact = torch.tensor([math.floor(Fraction(float(v)) * T) for v in x], dtype=torch.float64)
    return x, exact


def if_counts_exact(current: list[Fraction], v0: Fraction) -> list[int]:
    """Brute-force IF neuron in exact rational arithmetic: threshold 1, subtract reset; spike train."""
    v, out = v0, []
    for i in current:
        v += i
        fire = v >= 1
        v -= 1 if fire else 0
        out.append(int(fire))
    return out


# ---------------------------------------------------------------------------------------------- the CQ activation

def test_clamp_quantize_hand_worked_values():
    z = torch.tensor([-0.3, 0.1, 0.25, 0.6, 0.99, 1.7])
    # floor(4 * clamp(z)) / 4
    assert clamp_quantize(z, 4).tolist() == [0.0, 0.0, 0.25, 0.5, 0.75, 1.0]
    # round: floor(4 * clamp(z) + 1/2) / 4
    assert clamp_quantize(z, 4, offset=0.5).tolist() == [0.0, 0.0, 0.25, 0.5, 1.0, 1.0]
    assert clamp_quantize(z, 1).tolist() == [0.0, 0.0, 0.0, 0.0, 0.0, 1.0]


@pytest.mark.parametrize("T", T_VALUES)
def test_grid_values_keep_their_level(T):
    """A float32 value on the 1/T grid is quantized to its own level: the guard makes floor robust to fl32(k/T)
    lying just below k/T; without it some levels drop by one (docs/methods/cq.md, §8.1)."""
    k = torch.arange(T + 1, dtype=torch.float32)
    assert torch.equal(grid_levels(grid_values(T), T), k)
    assert torch.equal(grid_levels(grid_values(T), T, offset=0.5), k)
    x, exact = off_grid_values(T)
    assert torch.equal(grid_levels(x, T).double(), exact)


def test_unguarded_float32_floor_loses_grid_levels():
    lost = sum(int((grid_levels(grid_values(T), T, guard=0.0) != torch.arange(T + 1)).sum()) for T in range(1, 201))
    assert lost > 0


def test_straight_through_gradient():
    z = torch.tensor([-0.5, 0.0, 0.3, 0.77, 1.0, 1.5], requires_grad=True)
    clamp_quantize(z, 8).backward(torch.tensor([1.0, 2.0, 3.0, -4.0, 5.0, 6.0]))
    # quantizer: identity; clamp: passes the gradient inside [0, 1] (torch.clamp includes the bounds)
    assert z.grad.tolist() == [0.0, 2.0, 3.0, -4.0, 5.0, 0.0]
    a = torch.tensor([0.2, 0.6], requires_grad=True)
    quantize(a, 8, clip_grad=True).backward(torch.tensor([3.0, -0.5]))
    assert a.grad.tolist() == [1.0, -0.5]


def test_stages_switch_every_site():
    model = nn.Sequential(GridQuantizer("input"), ClampQuantize(), nn.AvgPool2d(2), GridQuantizer("pool"))
    configure_cq(model, T=4, quantize_pool=True, quantize_input=False)
    z = torch.tensor([[[[-1.0, 0.3], [0.6, 1.8]]]])
    set_cq_stage(model, "relu")
    assert model[1](z).flatten().tolist() == pytest.approx([0.0, 0.3, 0.6, 1.8])
    assert torch.equal(model[3](z), z)
    set_cq_stage(model, "clamp")
    assert model[1](z).flatten().tolist() == pytest.approx([0.0, 0.3, 0.6, 1.0])
    set_cq_stage(model, "quantize")
    assert model[1](z).flatten().tolist() == [0.0, 0.25, 0.5, 1.0]
    assert model[3](torch.tensor([0.3])).tolist() == [0.25]
    assert torch.equal(model[0](z), z)  # quantize_input off
    with pytest.raises(ValueError):
        set_cq_stage(model, "qcfs")


# ------------------------------------------------------------------------------------------- Algorithm 2, encoder

@pytest.mark.parametrize("T", T_VALUES)
def test_encoder_emits_floor_Tx_spikes_on_and_off_the_grid(T):
    on = grid_values(T)
    assert torch.equal(if_encode(on, T).sum(0), torch.arange(T + 1, dtype=torch.float32))
    off, exact = off_grid_values(T)
    assert torch.equal(if_encode(off, T).sum(0).double(), exact)


@pytest.mark.parametrize("T", T_VALUES + (255,))
def test_encoder_on_every_8bit_pixel(T):
    """Real images are p / 255: the count must be the integer floor(T p / 255) for all 256 values."""
    p = torch.arange(256)
    x = p.float() / 255.0
    assert torch.equal(if_encode(x, T).sum(0).long(), (T * p) // 255)


def test_encoder_spikes_are_evenly_spaced_and_anytime():
    T = 400
    for x in (0.25, 0.37, 0.5, 0.93, 0.011):
        spikes = if_encode(torch.tensor([x]), T)[:, 0]
        times = torch.nonzero(spikes).flatten() + 1
        gaps = times.diff()
        assert int(gaps.max()) - int(gaps.min()) <= 1
        assert math.floor(1 / x) <= int(gaps.min()) and int(gaps.max()) <= math.ceil(1 / x)
        # after every t <= T the count is floor(t x + v0): one run serves every window
        counts = spikes.cumsum(0)
        assert torch.equal(counts.double(), torch.cat([encoded_count(torch.tensor([x]), t) for t in range(1, T + 1)]))
    # x = 0.25: a spike every 4th step (docs/methods/cq.md, §3)
    assert (torch.nonzero(if_encode(torch.tensor([0.25]), 12)[:, 0]).flatten() + 1).tolist() == [4, 8, 12]


def test_encoder_is_the_exact_if_neuron():
    """Same spike train as a brute-force IF neuron in exact rational arithmetic, driven by the float32 pixel."""
    x, _ = off_grid_values(37, n=40, seed=3)
    spikes = if_encode(x, 37)
    for j, v in enumerate(x.tolist()):
        assert spikes[:, j].long().tolist() == if_counts_exact([Fraction(v)] * 37, Fraction(GRID_GUARD))


def test_spike_encoder_module_in_the_simulation():
    enc = SpikeEncoder()
    x = torch.rand(3, 1, 4, 4)
    for chunk in (1, 5):
        reset(enc)
        out = run_steps(nn.Sequential(enc, nn.Flatten()), x, 20, chunk)
        assert torch.equal(out.reshape(20, 3, 1, 4, 4), if_encode(x, 20))
        assert torch.equal(enc.spike_count.float(), if_encode(x, 20).sum(0))


# ------------------------------------------------------------------------------------ IF neurons and the guard

@pytest.mark.parametrize("T", T_VALUES)
def test_grid_current_never_loses_a_spike(T):
    """float32 IF neuron (threshold 1) fed fl32(k/T) for T steps: exactly k spikes with v0 = guard."""
    neuron = IFNeuron(1.0, v0_fraction=GRID_GUARD)
    x = grid_values(T)
    for _ in range(T):
        neuron(x)
    assert torch.equal(neuron.spike_count, torch.arange(T + 1, dtype=torch.float32))


def test_unguarded_float32_neuron_loses_spikes():
    T = 100
    neuron = IFNeuron(1.0, v0_fraction=0.0)
    for _ in range(T):
        neuron(grid_values(T))
    assert int((neuron.spike_count != torch.arange(T + 1)).sum()) > 10  # docs/methods/cq.md, §8.1 reports 45 of 101


def test_count_bounds_hand_worked():
    # [1, -1]: fires at step 1, the -1 cannot take the spike back: count 1, CNN level floor(0) = 0, bound [0, 1]
    lower, target, upper = count_bounds(torch.tensor([[1.0], [-1.0]]), GRID_GUARD)
    assert (lower.item(), target.item(), upper.item()) == (0, 0, 1)
    # [0, 2] in T = 2: the late current cannot fire twice in one step: count 1, level 2, bound [1, 2]
    lower, target, upper = count_bounds(torch.tensor([[0.0], [2.0]]), GRID_GUARD)
    assert (lower.item(), target.item(), upper.item()) == (1, 2, 2)


def test_if_count_lies_in_its_bounds_brute_force():
    g = torch.Generator().manual_seed(0)
    T = 24
    currents = torch.cat([torch.randn(T, 3000, generator=g) * 0.6 + 0.3,  # any sign
                          torch.rand(T, 1000, generator=g)], dim=1)  # in [0, 1]: exact
    for v0 in (GRID_GUARD, 0.5 + GRID_GUARD):
        neuron = IFNeuron(1.0, v0_fraction=v0)
        for t in range(T):
            neuron(currents[t])
        count = neuron.spike_count.double()
        lower, target, upper = count_bounds(currents, v0)
        assert bool(((lower <= count) & (count <= upper)).all())
        pinned = lower == upper
        assert bool(pinned[3000:].all())
        assert torch.equal(count[pinned], target[pinned])


# --------------------------------------------------------------------------- conversion: near lossless, exactly

def tiny_cq_net(T: int, rounding: str = "floor", nonnegative: bool = True, seed: int = 0) -> nn.Sequential:
    """Conv -> BN -> CQ -> pool -> Q -> fc -> BN -> CQ -> readout. With `nonnegative`, every spiking layer's
    per-step input current lies in [0, 1] (non-negative folded weights, row sums + bias <= 0.9), except one
    conv channel whose bias (1.2) saturates it: the conditions under which the SNN is exact (count_bounds)."""
    torch.manual_seed(seed)
    net = nn.Sequential(
        GridQuantizer("input"),
        nn.Conv2d(1, 3, 3, bias=False), nn.BatchNorm2d(3), ClampQuantize(), nn.AvgPool2d(2), GridQuantizer("pool"),
        nn.Flatten(), nn.Linear(3 * 3 * 3, 5, bias=False), nn.BatchNorm1d(5), ClampQuantize(),
        nn.Linear(5, 4),
    )
    configure_cq(net, T=T, rounding=rounding)
    with torch.no_grad():
        for layer, bn in ((net[1], net[2]), (net[7], net[8])):
            n_out = layer.weight.shape[0]
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.uniform_(0.5, 1.5)
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            if nonnegative:
                layer.weight.uniform_(0.0, 1.0)
                bn.running_mean.zero_()
                bn.bias.uniform_(0.0, 0.2)
                row = layer.weight.reshape(n_out, -1).sum(1) * scale  # max folded current without bias
                layer.weight.mul_(((0.9 - bn.bias) / row).reshape(-1, *([1] * (layer.weight.dim() - 1))))
            else:
                layer.weight.normal_(0.0, 1.5 / math.sqrt(layer.weight[0].numel()))
                bn.running_mean.normal_(0.0, 0.3)
                bn.bias.uniform_(0.0, 0.5)
        if nonnegative:
            net[2].bias[0] = 1.2  # saturating channel: clamp at 1 binds, the neuron fires every step
    return set_cq_stage(net, "quantize").eval()


@pytest.mark.parametrize("T,rounding", [(7, "floor"), (64, "floor"), (64, "round"), (1000, "floor")])
def test_snn_spike_counts_equal_quantized_cnn_layer_by_layer(T, rounding):
    """The near-lossless claim, exactly: when every layer's input current per step is in [0, 1] (count_bounds'
    D = E = 0), spike count = T x CQ activation in every layer, and the averaged readout = the CNN's logits."""
    net = tiny_cq_net(T, rounding)
    snn = convert_cq(net)
    x = torch.rand(16, 1, 8, 8)
    x[:, :, :2] = (torch.randint(0, T + 1, (16, 1, 2, 8)) / T).float()  # some pixels exactly on the grid
    reset(snn)
    out = run_steps(snn, x, T, chunk=1 if T < 1000 else 50)
    names = spiking_layer_names(snn)
    assert names == ["0", "3", "5", "9"]
    counts, levels = spike_counts(snn), ann_levels(net, x, T, names)  # the original, unfolded CNN
    for name in names:
        assert torch.equal(counts[name].float(), levels[name].float()), name
    assert bool((counts["3"][:, 0] == T).all())  # the saturating channel
    torch.testing.assert_close(out.mean(0), net(x), atol=1e-5, rtol=1e-5)


def test_snn_with_mixed_sign_weights_stays_within_the_proven_bounds():
    """Random-sign weights: exactness is lost where a neuron's partial input sums overshoot (early spikes that
    later negative input cannot take back) or outrun one spike per step. Every count lies in count_bounds of its
    own input currents, and equals the CQ level wherever those bounds pin it."""
    T = 32
    snn = convert_cq(tiny_cq_net(T, nonnegative=False, seed=1))
    x = torch.rand(32, 1, 8, 8)
    currents: dict[str, list] = {}
    hooks = [m.register_forward_pre_hook(lambda mod, inp, n=n: currents.setdefault(n, []).append(inp[0]))
             for n, m in snn.named_modules() if isinstance(m, IFNeuron) and not isinstance(m, SpikeEncoder)]
    reset(snn)
    run_steps(snn, x, T, chunk=1)
    for h in hooks:
        h.remove()
    counts = spike_counts(snn)
    inexact = 0
    for name, seq in currents.items():
        lower, target, upper = count_bounds(torch.stack(seq), GRID_GUARD)
        c = counts[name].double()
        assert bool(((lower <= c) & (c <= upper)).all()), name
        assert torch.equal(c[lower == upper], target[lower == upper]), name
        inexact += int((c != target).sum())
    assert inexact > 0  # the bound is not vacuous here: this network is not exact


def test_batchnorm_folding_is_exact_to_float_tolerance():
    net = tiny_cq_net(16, nonnegative=False, seed=2)
    with torch.no_grad():
        net[2].running_mean.normal_(0, 1)
    set_cq_stage(net, "clamp")
    folded = fold_batchnorm(net)
    assert not any(isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d) for m in folded.modules())
    x = torch.rand(64, 1, 8, 8)
    torch.testing.assert_close(folded(x), net(x), atol=1e-5, rtol=1e-5)
    pre = {}
    net[1].register_forward_hook(lambda m, i, o: pre.__setitem__("ann", net[2](o)))
    folded[1].register_forward_hook(lambda m, i, o: pre.__setitem__("folded", o))
    net(x), folded(x)
    torch.testing.assert_close(pre["folded"], pre["ann"], atol=1e-5, rtol=1e-5)


def test_ann_view_is_the_folded_quantized_cnn():
    net = tiny_cq_net(16, nonnegative=False, seed=3)
    snn = convert_cq(net)
    x = torch.rand(64, 1, 8, 8)
    torch.testing.assert_close(ann_view(snn, 16)(x), net(x), atol=1e-4, rtol=1e-4)


def test_multistep_chunks_give_identical_spikes():
    snn = convert_cq(tiny_cq_net(16, nonnegative=False, seed=4))
    x = torch.rand(8, 1, 8, 8)
    outs = []
    for chunk in (1, 3, 16):
        reset(snn)
        outs.append(run_steps(snn, x, 40, chunk))
    assert torch.equal(outs[0], outs[1]) and torch.equal(outs[0], outs[2])


def test_conversion_recipe_and_its_refusals():
    net = tiny_cq_net(8)
    snn = convert_cq(net)
    assert isinstance(snn[0], SpikeEncoder) and isinstance(snn[4], nn.AvgPool2d)
    assert all(float(n.theta) == 1.0 for n in snn.modules() if isinstance(n, IFNeuron))
    assert not any(p.requires_grad for p in snn.parameters())
    assert isinstance(net[3], ClampQuantize)  # the ANN is left untouched
    with pytest.raises(ConversionError, match="ReLU"):
        convert_cq(nn.Sequential(GridQuantizer("input"), nn.Linear(2, 2), nn.ReLU(), ClampQuantize()))
    with pytest.raises(ConversionError, match="max pooling"):
        convert_cq(nn.Sequential(GridQuantizer("input"), nn.MaxPool2d(2), ClampQuantize()))
    with pytest.raises(ConversionError, match="input quantizer"):
        convert_cq(nn.Sequential(nn.Linear(2, 2), ClampQuantize()))


# ------------------------------------------------------------------------------------------ low-precision weights

@pytest.mark.parametrize("bits", [2, 3, 8, 9])
def test_weight_quantization_keeps_the_documented_levels(bits):
    layer = nn.Linear(2048, 4)
    with torch.no_grad():
        layer.weight.copy_(torch.linspace(-0.7, 0.7, 2048 * 4).reshape(4, 2048))
        layer.bias.copy_(torch.tensor([0.9, -0.1, 0.0, 0.3]))  # the scale is max(|W|, |b|) = 0.9
    model = nn.Sequential(layer, nn.Linear(4, 2))
    q = quantize_weights(model, bits)
    step = 0.9 / max_code(bits)
    codes = torch.round(torch.cat([q[0].weight.flatten(), q[0].bias]) / step)
    assert codes.abs().max() <= max_code(bits) == 2 ** (bits - 1) - 1
    assert float(q[0].bias[0].detach()) == pytest.approx(0.9)  # the largest magnitude gets a code, no clipping
    values = torch.unique(torch.cat([q[0].weight.flatten(), q[0].bias]))
    assert len(values) <= num_levels(bits) == 2 ** bits - 1
    # every code that the weights' range covers is used: 2 * round(0.7 / step) + 1 of them
    assert len(torch.unique(q[0].weight)) == 2 * round(0.7 / step) + 1
    assert (q[0].weight - model[0].weight).abs().max() <= step / 2 + 1e-7
    assert torch.equal(q[1].weight, model[1].weight)  # the readout stays float
    assert torch.equal(quantize_weights(model, bits, include_output=True)[1].weight,
                       quantize_tensor(model[1].weight.detach(), bits, layer_scale(model[1])))
    assert quantize_weights(model, 32) is model
    with pytest.raises(ValueError):
        max_code(1)


# ----------------------------------------------------------------------------------------------------- networks

@pytest.mark.parametrize("name,channels,size,convs", [
    ("vgg_star", 3, 32, 7), ("vgg11_cq", 3, 32, 8), ("vgg13_cq", 3, 32, 10), ("vgg16_cq", 3, 32, 13),
    ("vgg19_cq", 3, 32, 16), ("vgg_mini_cq", 1, 28, 5), ("lenet_cq", 1, 28, 2), ("mnist7_cq", 1, 28, 7),
])
def test_cq_networks(name, channels, size, convs):
    model = create_model(name, num_classes=10, in_channels=channels, image_size=size, act=ClampQuantize)
    assert sum(isinstance(m, nn.Conv2d) for m in model.modules()) == convs
    assert not any(isinstance(m, (nn.MaxPool2d, nn.ReLU)) for m in model.modules())
    readout = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    if name.startswith("vgg") and name != "vgg_mini_cq":
        assert [m for m in model.modules() if isinstance(m, nn.Linear)] == [readout]  # one classifier
        assert readout.in_features == (1024 if name == "vgg_star" else 512)
    configure_cq(model, T=16)
    model.eval()
    assert model(torch.rand(2, channels, size, size)).shape == (2, 10)
    assert name in MODELS


# ------------------------------------------------------------------------------------------------ staged training

def test_staged_training_runs_each_stage_and_resumes(tmp_path):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (96, 1, 8, 8), dtype=torch.uint8, generator=g)
    y = (x.float().mean((1, 2, 3)) > 127).long()
    net = tiny_cq_net(8, nonnegative=False)
    schedule = CQSchedule(epochs={"relu": 2, "clamp": 1, "quantize": 1}, lr={"relu": 1e-2, "clamp": 1e-3,
                                                                            "quantize": 1e-3}, batch_size=32,
                          input_noise=0.01)
    seen = []
    to_input = lambda xb: xb.float() / 255  # noqa: E731
    hist = train_cq(net, x, y, to_input, schedule, 0, tmp_path, log=lambda m: None,
                    evaluate=lambda m: seen.append([s.stage for s in m.modules() if hasattr(s, "stage")]) or {})
    rows = hist["history"]
    assert [(r["stage"], r["epoch"]) for r in rows] == [("relu", 1), ("relu", 2), ("clamp", 1), ("quantize", 1)]
    assert [r["stage"] for r in rows if r.get("stage_end")] == ["relu", "clamp", "quantize"]
    assert [set(s) for s in seen] == [{"relu"}, {"clamp"}, {"quantize"}]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cq_clamp.pt", "cq_quantize.pt", "cq_relu.pt"]
    weights = copy.deepcopy(net.state_dict())
    again = tiny_cq_net(8, nonnegative=False, seed=9)
    hist2 = train_cq(again, x, y, to_input, schedule, 0, tmp_path, log=lambda m: None)
    assert hist2["history"] == rows  # nothing retrained
    for k, v in again.state_dict().items():
        assert torch.equal(v, weights[k]), k


@pytest.mark.parametrize("at", [2, 5, 7])  # relu epoch 1 batch 2, relu epoch 2 batch 2, clamp epoch 1 batch 1
def test_staged_training_stopped_by_sigterm_mid_epoch_resumes_bit_identical(tmp_path, at):
    """snnlib/preemption.py in the staged loop: saved at the batch after the SIGTERM, in that stage's checkpoint;
    the resumed run (input noise drawn from the stage's generator) ends with the uninterrupted weights."""
    import signal
    from snnlib import preemption
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (96, 1, 8, 8), dtype=torch.uint8, generator=g)
    y = (x.float().mean((1, 2, 3)) > 127).long()
    schedule = CQSchedule(epochs={"relu": 2, "clamp": 1, "quantize": 1}, lr={"relu": 1e-2, "clamp": 1e-3,
                                                                            "quantize": 1e-3}, batch_size=32,
                          input_noise=0.01)
    calls = [0]

    def to_input(xb, stop_at=None):
        calls[0] += 1
        if calls[0] == stop_at:
            signal.raise_signal(signal.SIGTERM)
        return xb.float() / 255

    ref = tiny_cq_net(8, nonnegative=False)
    ref_rows = train_cq(ref, x, y, to_input, schedule, 0, tmp_path / "ref", log=lambda m: None)["history"]
    net = tiny_cq_net(8, nonnegative=False)
    calls[0] = 0
    with preemption.stop_on_signals():
        with pytest.raises(preemption.Stopped, match=r"training stopped in epoch \d after batch \d/3"):
            train_cq(net, x, y, lambda xb: to_input(xb, at), schedule, 0, tmp_path / "run", log=lambda m: None)
    again = tiny_cq_net(8, nonnegative=False, seed=9)
    log = []
    rows = train_cq(again, x, y, to_input, schedule, 0, tmp_path / "run", log=log.append)["history"]
    assert any(f"resumed from {tmp_path / 'run'}" in line and "after batch" in line for line in log), log
    strip = lambda h: [{k: v for k, v in r.items() if k not in ("seconds", "job")} for r in h]  # noqa: E731
    assert strip(rows) == strip(ref_rows)
    for k, v in again.state_dict().items():
        assert torch.equal(v, ref.state_dict()[k]), k


# ------------------------------------------------------------------------------------------ config and reporting

def cq_config(**cq):
    return {"name": "t", "experiments": {"e": {
        "methods": {"cq": {}}, "dataset": "mnist", "model": "lenet_cq", "normalize": False, "train": {}, "cq": cq}}}


def test_cq_config_defaults_and_checks():
    e = validate(cq_config(T=100))["experiments"]["e"]
    assert e["cq"]["T"] == 100 and e["cq"]["rounding"] == "floor" and e["methods"]["cq"]["weight_bits"] == [32, 9, 8]
    assert e["cq"]["stages"] == {"relu": 2, "clamp": 1, "quantize": 1} and e["cq"]["optimizer"] == "adam"
    assert e["cq"]["grid_guard"] == GRID_GUARD
    raw = cq_config()
    del raw["experiments"]["e"]["cq"]
    assert validate(raw)["experiments"]["e"]["cq"]["T"] == 64  # filled in for cq experiments
    for mutate, needle in [(lambda x: x.update(normalize=True), "normalize"),
                           (lambda x: x["methods"].update(cq={"weight_bits": [1]}), "weight_bits"),
                           (lambda x: x.update(train={"epochs": 3}), "train"),
                           (lambda x: x["cq"].update(rounding="ceil"), "rounding")]:
        raw = cq_config()
        mutate(raw["experiments"]["e"])
        with pytest.raises(ConfigError, match=needle):
            validate(raw)


def test_qcfs_experiments_are_untouched_by_the_cq_keys():
    qcfs = {"name": "t", "experiments": {"e": {"dataset": "mnist", "model": "lenet", "train": {"epochs": 1}}}}
    e = validate(qcfs)["experiments"]["e"]
    assert e["methods"] == {"qcfs": {}} and "cq" not in e
    assert experiment_hash(e) == experiment_hash(validate(qcfs)["experiments"]["e"])
    del qcfs["experiments"]["e"]["train"]["epochs"]
    with pytest.raises(ConfigError, match="epochs"):
        validate(qcfs)


def _reports(method, variants, recipe, L=4):
    prov = {"git_commit": "x", "torch_version": "t", "device": "cpu", "timestamp": "now"}
    ident = {"config": "t", "experiment": method, "dataset": "mnist", "model": "m", "L": L, "seed": 0,
             "config_hash": "h", "recipe": recipe}
    train = {**ident, "ann_quantized_subset": 0.9, "ann_quantized_full": 0.91, "ann_clip_subset": 0.95,
             "ann_clip_full": 0.96, "train_wall_s": 1.0, "provenance": prov}
    ev = {**ident, "method": method, "n_images": 10, "subset": "s", "variants": variants, "eval_wall_s": 1.0,
          "provenance": prov}
    return train, ev


def test_report_rows_and_table_label_cq():
    tr_q, ev_q = _reports("qcfs", [{"key": "", "label": "SNN, QCFS", "t_pre": 0, "params": {},
                                    "accuracy": [0.5, 0.6]}], "qcfs")
    tr_c, ev_c = _reports("cq", [{"key": "", "label": "SNN, CQ (T=16)", "t_pre": 0, "params": {"weight_bits": 32},
                                  "accuracy": [0.7, 0.8]},
                                 {"key": "w8", "label": "SNN, CQ (T=16), 8-bit weights", "t_pre": 0,
                                  "params": {"weight_bits": 8}, "accuracy": [0.6, 0.75]}], "cq", L=16)
    rows = result_rows([tr_q, tr_c], [ev_q, ev_c])
    assert len(rows) == 2 + 2 * 2
    assert set(rows[rows["method"] == "cq"]["weight_bits"]) == {32, 8}
    assert rows[rows["method"] == "qcfs"]["ann_quantized_subset"].eq(0.9).all()
    md = markdown_report(rows, [1, 2, 4], "t")
    assert "SNN, CQ (T=16)" in md and "SNN, CQ (T=16), 8-bit weights" in md and "SNN, QCFS" in md
    assert "ANN, CQ clamp + quantize (T=16)" in md and "75.00" in md
    assert md.count("not run") == 3  # T=4 > T_max = 2 in the three SNN rows


# -------------------------------------------------------------------------------------------------- end to end

@pytest.mark.slow
@pytest.mark.data
def test_cq_stages_end_to_end(tmp_path):
    from snnlib import stages
    from snnlib.data import load_split
    try:
        load_split("mnist", "test")
    except FileNotFoundError:
        pytest.skip("MNIST not prepared")
    cfg = validate({"name": "t", "data_root": str(REPO_ROOT / "data"), "experiments": {"e": {
        "methods": {"cq": {"weight_bits": [32, 4]}}, "dataset": "mnist", "model": "lenet_cq", "normalize": False,
        "train": {"max_samples": 2000, "batch_size": 64},
        "cq": {"T": 8, "stages": {"relu": 1, "clamp": 1, "quantize": 1}},
        "eval": {"T_max": 16, "test_per_class": 5, "batch_size": 25}}}})
    log = lambda m: None  # noqa: E731
    cpu = torch.device("cpu")
    tr = stages.run_train(cfg, "e", 0, "cq", tmp_path / "ann.pt", tmp_path / "ann.json", tmp_path / "ann.npz", cpu, log)
    assert tr["recipe"] == "cq" and set(tr["stage_test_accuracy"]) == {"relu", "clamp", "quantize"}
    assert tr["ann_quantized_full"] > 0.5 and tr["L"] == 8
    stages.run_convert(cfg, "e", 0, "cq", tmp_path / "ann.pt", tmp_path / "snn.pt", tmp_path / "snn.json", cpu, log)
    ev = stages.run_evaluate(cfg, "e", 0, "cq", tmp_path / "snn.pt", tmp_path / "cq.json", tmp_path / "cq.npz", cpu,
                             log)
    by_bits = {v["params"]["weight_bits"]: v for v in ev["variants"]}
    assert ev["method"] == "cq" and len(by_bits[32]["accuracy"]) == 16
    assert set(by_bits) == {32, 4} and ev["weight_levels"]["4"] == 15
    assert by_bits[32]["efficiency"] is not None and by_bits[4]["efficiency"] is None
    agreement = {row["kind"]: row for row in ev["layer_agreement"]}
    assert agreement["input encoder"]["exact_fraction"] == 1.0  # the encoder matches the quantized input exactly
    # pool neurons get currents in [0, 1]: exactly the level of their own input (count_bounds with D = E = 0)
    assert agreement["IF after avg pool"]["local_exact_fraction"] == 1.0
    assert 0 <= ev["snn_equals_ann_prediction_at_T"] <= 1
    assert json.loads((tmp_path / "cq.json").read_text())["variants"][0]["accuracy"] == by_bits[32]["accuracy"]
    rows = result_rows([tr], [ev])
    assert len(rows) == 2 * 16 and "SNN, CQ (T=8), 4-bit weights" in markdown_report(rows, [8, 16], "t")
    assert np.isclose(by_bits[32]["accuracy"][-1],
                      rows[(rows["T"] == 16) & (rows["weight_bits"] == 32)]["accuracy"].item())
    from snnlib import outcomes
    o = outcomes.load(tmp_path / "cq.npz")
    assert o.predictions[""].shape == (16, 50) and o.predictions["w4"].shape == (16, 50)
    assert np.isclose(o.correct("")[-1].mean(), by_bits[32]["accuracy"][-1])
