"""MaxNorm and RobustNorm (snnlib/methods/norm/): scales, the ReLU -> IF conversion, the v0 variants, the relu
recipe. Small hand-checked networks; every test runs in well under a second or two on the CPU."""
from __future__ import annotations

from types import SimpleNamespace

import jsonschema
import pytest
import torch
from torch import nn

from snnlib.conversion import ConversionError
from snnlib.methods.base import get_method, get_recipe
from snnlib.methods.norm import MAXNORM, ROBUSTNORM, activation_scales, convert_relu, relu_layers
from snnlib.methods.qcfs.activation import QCFS
from snnlib.neurons import if_neurons
from snnlib.engine import Plan, per_step_loop, reset, run_steps
from snnlib.training import TrainSettings


def linear(w, b) -> nn.Linear:
    w = torch.tensor(w, dtype=torch.float32)
    layer = nn.Linear(w.shape[1], w.shape[0])
    with torch.no_grad():
        layer.weight.copy_(w)
        layer.bias.copy_(torch.tensor(b, dtype=torch.float32))
    return layer


def chain_1d() -> nn.Sequential:
    """x -> relu(x) -> relu(2 a - 1) -> logits: both layers' activations are known by hand."""
    return nn.Sequential(linear([[1.0]], [0.0]), nn.ReLU(), linear([[2.0]], [-1.0]), nn.ReLU(),
                         linear([[1.0], [-1.0]], [0.0, 0.0]))


# x = -2..7: layer 1 outputs 0,0,0,1,...,7; layer 2 outputs relu(2 a - 1) = 0,0,0,1,3,5,7,9,11,13
X_1D = torch.arange(-2, 8, dtype=torch.float32)[:, None]


@pytest.mark.parametrize("percentile, expected", [
    (None, [7.0, 13.0]),   # MaxNorm
    (100, [7.0, 13.0]),    # the 100th percentile is the maximum
    (99.9, [7.0, 13.0]),   # nearest rank ceil(9.99) = 10 of 10 values
    (70, [4.0, 7.0]),      # rank 7: zeros count as values
    (50, [2.0, 3.0]),      # rank 5
    (10, [0.0, 0.0]),      # rank 1
])
def test_scales_by_hand(percentile, expected):
    net = chain_1d()
    assert activation_scales(net, X_1D, percentile) == expected
    # the same over batches of any split
    assert activation_scales(net, [X_1D[:3], X_1D[3:]], percentile) == expected
    assert activation_scales(net, X_1D, percentile, batch_size=4) == expected


def test_percentile_subsample_estimates_large_layers():
    torch.manual_seed(1)
    net = nn.Sequential(linear([[1.0]], [0.0]), nn.ReLU(), linear([[1.0]], [0.0]))
    x = torch.rand(20000, 1)
    exact = activation_scales(net, x, 90.0)
    assert exact == [float(x.flatten().sort().values[17999])]  # rank ceil(0.9 * 20000)
    sampled = activation_scales(net, x, 90.0, max_samples=5000)  # 4 of 5 values dropped
    assert sampled[0] != exact[0] and abs(sampled[0] - exact[0]) < 0.02
    assert activation_scales(net, x, None, max_samples=10) == [float(x.max())]  # the maximum is always exact


def test_scales_restore_training_mode_and_reject_shared_relu():
    net = chain_1d().train()
    activation_scales(net, X_1D, None)
    assert net.training
    relu = nn.ReLU()
    shared = nn.Sequential(linear([[1.0]], [0.0]), relu, linear([[1.0]], [0.0]), relu, linear([[1.0]], [0.0]))
    with pytest.raises(ConversionError, match="ran 2 times"):
        activation_scales(shared, X_1D, None)


# ---------------------------------------------------------------------------------------------------------------
# A converted network computed by hand

W1, B1 = [[1.0, 0.0], [0.5, 0.5]], [0.0, -0.125]
W2, B2 = [[1.0, -1.0], [0.5, 1.0]], [0.25, 0.0]
THETA = 2.0
X_HAND = torch.tensor([[0.75, 0.5]])   # hidden currents z = (0.75, 0.5), i.e. 3/8 and 1/4 of theta per step
# spike steps (1-based) of the two hidden neurons over 8 steps, traced by hand:
#   v0 = 0:        m1 = .75 1.5 2.25* 1 1.75 2.5* 1.25 2*   (* spike, then - 2)   m2 = .5 1 1.5 2* .5 1 1.5 2*
#   v0 = theta/2:  m1 = 1.75 2.5* 1.25 2* .75 1.5 2.25* 1   m2 = 1.5 2* .5 1 1.5 2* .5 1
SPIKES = {0.0: ([3, 6, 8], [4, 8]), 0.5: ([2, 4, 7], [2, 6])}


def hand_net() -> nn.Sequential:
    return nn.Sequential(linear(W1, B1), nn.ReLU(), linear(W2, B2))


@pytest.mark.parametrize("v0", [0.0, 0.5])
def test_two_layer_snn_by_hand(v0):
    snn = convert_relu(hand_net(), [THETA], v0)
    (neuron,) = if_neurons(snn)
    assert float(neuron.theta) == THETA and neuron.v0_fraction == v0
    expected = torch.zeros(8, 1, 2)
    w2, b2 = torch.tensor(W2), torch.tensor(B2)
    for t in range(1, 9):
        s = torch.tensor([float(t in SPIKES[v0][0]), float(t in SPIKES[v0][1])])
        expected[t - 1, 0] = w2 @ (THETA * s) + b2   # each spike carries theta into the read-out layer
    for chunk in (1, 3, 8):
        reset(snn)
        assert torch.equal(run_steps(snn, X_HAND, 8, chunk), expected)
    assert torch.equal(neuron.spike_count, torch.tensor([[3.0, 2.0]]))  # floor(8 z / theta + v0)
    assert torch.equal(per_step_loop(snn, X_HAND, 8), expected)


def brute_force_if(ann: nn.Sequential, thetas: list[float], v0: float, x: torch.Tensor, T: int):
    """The network called once per step, every ReLU replaced by a plain IF update written out here."""
    layers = list(ann)
    state: dict[int, torch.Tensor] = {}
    counts: dict[int, torch.Tensor] = {}
    outs = []
    for _ in range(T):
        h = x
        k = 0
        for i, layer in enumerate(layers):
            if isinstance(layer, nn.ReLU):
                theta = thetas[k]
                v = state.get(i, torch.full_like(h, v0 * theta)) + h
                s = (v >= theta).float()
                state[i] = v - s * theta
                counts[i] = counts.get(i, torch.zeros_like(h)) + s
                h = s * theta
                k += 1
            else:
                h = layer(h)
        outs.append(h)
    return torch.stack(outs), [counts[i] for i in sorted(counts)]


@pytest.mark.parametrize("v0", [0.0, 0.5])
def test_deeper_snn_matches_brute_force_loop(v0):
    torch.manual_seed(3)
    ann = nn.Sequential(nn.Linear(5, 12), nn.ReLU(), nn.Linear(12, 9), nn.ReLU(), nn.Linear(9, 3)).eval()
    x = torch.randn(6, 5)
    scales = activation_scales(ann, x, None)
    snn = convert_relu(ann, scales, v0)
    out = run_steps(snn, x, 40, 8)
    ref, counts = brute_force_if(ann, scales, v0, x, 40)
    assert torch.equal(out, ref)
    for n, c in zip(if_neurons(snn), counts):
        assert torch.equal(n.spike_count, c)


# ---------------------------------------------------------------------------------------------------------------
# Rates approach the (clipped) ANN

def _activations(net: nn.Module, x: torch.Tensor, clip_at: list[float] | None = None) -> list[torch.Tensor]:
    """Every ReLU layer's output; with clip_at, the network whose ReLU l is clamp(., 0, clip_at[l])."""
    outs = []
    hooks = []
    for i, (_, m) in enumerate(relu_layers(net)):
        def hook(mod, inp, out, i=i):
            out = out if clip_at is None else out.clamp(max=clip_at[i])
            outs.append(out)
            return out
        hooks.append(m.register_forward_hook(hook))
    with torch.no_grad():
        net(x)
    for h in hooks:
        h.remove()
    return outs


def _rate_errors(snn, x, T, limits, scales):
    reset(snn)
    run_steps(snn, x, T, plan=Plan(chunk=40, exact=False))  # rates, not bits: whole-chunk GEMMs are faster
    errors = [float((n.spike_count / T - a / s).abs().max()) for n, a, s in zip(if_neurons(snn), limits, scales)]
    reset(snn)
    return errors


def test_maxnorm_rates_converge_to_relu_over_scale():
    torch.manual_seed(0)
    ann = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 4)).eval()
    calib = torch.randn(64, 6)
    scales = activation_scales(ann, calib, None)
    acts = _activations(ann, calib)
    assert all(float(a.max()) <= s for a, s in zip(acts, scales))  # MaxNorm never clips its calibration inputs
    assert any(float(a.max()) == s for a, s in zip(acts, scales))
    snn = convert_relu(ann, scales, 0.0)
    x = calib[:16]
    limits = [a[:16] for a in acts]
    short, long = _rate_errors(snn, x, 40, limits, scales), _rate_errors(snn, x, 800, limits, scales)
    assert short[0] <= 1 / 40 + 1e-6 and long[0] <= 1 / 800 + 1e-6  # first layer: |floor(T r) / T - r| < 1 / T
    assert max(long) < 0.01 and max(long) < max(short) / 4


def test_robustnorm_rates_converge_to_clipped_network():
    torch.manual_seed(0)
    ann = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 4)).eval()
    calib = torch.randn(64, 6)
    scales = activation_scales(ann, calib, 90.0)
    assert all(s < m for s, m in zip(scales, activation_scales(ann, calib, None)))
    clipped = _activations(ann, calib[:16], clip_at=scales)
    assert any(float((a == s).sum()) > 0 for a, s in zip(clipped, scales))  # some neurons saturate
    snn = convert_relu(ann, scales, 0.5)
    errors = _rate_errors(snn, calib[:16], 800, clipped, scales)
    assert max(errors) < 0.01


# ---------------------------------------------------------------------------------------------------------------
# The methods: v0 variants, metering, registry

def test_v0_half_fires_earlier_on_constant_input():
    net = nn.Sequential(linear([[1.0]], [0.0]), nn.ReLU(), linear([[1.0]], [0.0]))
    settings = {"v0": [0, 0.5], "calibration_images": 1}
    snn = MAXNORM.convert(net, {}, settings, calibration=lambda n: torch.tensor([[2.0]])[:n])
    assert [float(n.theta) for n in if_neurons(snn)] == [2.0]
    from snnlib.metrics import SynOpsMeter
    meter = SynOpsMeter(snn)
    runs = MAXNORM.run(snn, torch.tensor([[0.5]]), 10, {}, settings, meter)
    assert len(meter.take()["acs"]) == 20  # both variants' steps were counted, one after the other
    assert list(runs) == ["v0_0", "v0_half"]
    assert runs["v0_0"].steps == list(range(10)) and runs["v0_half"].steps == list(range(10, 20))
    first = {k: int(r.outputs[:, 0, 0].nonzero()[0]) + 1 for k, r in runs.items()}
    assert first == {"v0_0": 4, "v0_half": 2}  # 4 * 0.5 >= 2 from 0; 1 + 2 * 0.5 >= 2 from theta / 2
    totals = {k: float(r.outputs.sum()) / 2.0 for k, r in runs.items()}
    assert totals == {"v0_0": 2.0, "v0_half": 3.0}  # floor(10 / 4) and floor(10 / 4 + 1 / 2)
    assert if_neurons(snn)[0].v0_fraction == 0.0 and if_neurons(snn)[0].v is None  # restored and reset
    unmetered = MAXNORM.run(snn, torch.tensor([[0.5]]), 10, {}, {"v0": [0.5]}, None)
    assert list(unmetered) == ["v0_half"] and unmetered["v0_half"].steps is None
    assert torch.equal(unmetered["v0_half"].outputs, runs["v0_half"].outputs)


def test_registered_methods_and_settings():
    for name, method in (("maxnorm", MAXNORM), ("robustnorm", ROBUSTNORM)):
        assert get_method(name) is method and method.recipe == "relu" and method.conversion == name
        schema = method.settings_schema
        jsonschema.validate({"v0": [0, 0.5], "calibration_images": 512}, schema)
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({"v0": [0.25]}, schema)
        assert schema["properties"]["v0"]["default"] == [0, 0.5]
    assert ROBUSTNORM.settings_schema["properties"]["percentile"]["default"] == 99.9
    assert "percentile" not in MAXNORM.settings_schema["properties"]
    variants = ROBUSTNORM.variants({}, {"v0": [0, 0.5]})
    assert [(v.key, v.label, v.t_pre, v.params) for v in variants] == [
        ("v0_0", "SNN, RobustNorm (v0=0)", 0, {"v0": 0.0}),
        ("v0_half", "SNN, RobustNorm (v0=theta/2)", 0, {"v0": 0.5})]
    snn = convert_relu(chain_1d(), [7.0, 13.0])
    assert MAXNORM.convert_report(snn)["thresholds"] == [7.0, 13.0]


def test_robustnorm_convert_uses_the_percentile():
    images = []
    snn = ROBUSTNORM.convert(chain_1d(), {}, {"percentile": 70, "calibration_images": 10},
                             calibration=lambda n: images.append(n) or X_1D)
    assert images == [10] and [float(n.theta) for n in if_neurons(snn)] == [4.0, 7.0]


# ---------------------------------------------------------------------------------------------------------------
# What is refused

def test_max_pooling_and_other_activations_refused():
    pooled = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(2, 2))
    with pytest.raises(ConversionError, match="max pooling"):
        convert_relu(pooled, [1.0])
    with pytest.raises(ConversionError, match="QCFS"):
        convert_relu(nn.Sequential(nn.Linear(1, 1), QCFS(), nn.Linear(1, 1)), None)
    with pytest.raises(ConversionError, match="no ReLU"):
        convert_relu(nn.Sequential(nn.Linear(1, 1)), [])


def test_dead_layer_refused():
    scales = activation_scales(chain_1d(), torch.zeros(4, 1), None)  # nothing is active on these images
    assert scales == [0.0, 0.0]
    with pytest.raises(ConversionError, match="never active"):
        convert_relu(chain_1d(), scales)


# ---------------------------------------------------------------------------------------------------------------
# The relu recipe, and a real model through the engine

def test_relu_recipe_builds_checks_and_trains(tmp_path):
    recipe = get_recipe("relu")
    exp = {"model": "lenet", "dataset": "mnist"}
    recipe.check(exp)
    recipe.check({"model": "vgg16", "dataset": "imagenet"})  # built on the meta device: no memory
    from snnlib.config import ConfigError
    with pytest.raises(ConfigError, match="GridQuantizer"):
        recipe.check({"model": "lenet_cq", "dataset": "mnist"})
    model = recipe.build(exp)
    assert len(relu_layers(model)) == 3 and not any(isinstance(m, QCFS) for m in model.modules())
    views = recipe.views()
    assert set(views) == {"ann_quantized", "ann_clip"} and all(view(model) is model for view in views.values())
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (16, 1, 28, 28), dtype=torch.uint8, generator=g)
    y = torch.randint(0, 10, (16,), generator=g)
    from snnlib.data import TensorBatches
    exp = {**exp, "train": {"epochs": 1, "batch_size": 8, "lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4,
                            "schedule": "cosine"}}
    ctx = SimpleNamespace(exp=exp, model=model, data=TensorBatches(x, y), to_input=lambda xb: xb.float() / 255.0,
                          seed=0, ckpt_dir=tmp_path, augment=None, log=lambda s: None, fingerprint="test",
                          device=torch.device("cpu"))
    before = [p.detach().clone() for p in model.parameters()]
    out = recipe.train(ctx)
    assert [row["epoch"] for row in out["history"]] == [1] and (tmp_path / "train_state.pt").exists()
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_converted_lenet_runs_in_engine_like_the_loop():
    torch.manual_seed(0)
    ann = get_recipe("relu").build({"model": "lenet", "dataset": "mnist"}).eval()
    for m in ann.modules():
        if isinstance(m, nn.BatchNorm2d):  # BN kept as an affine map in eval mode
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    calib = torch.randn(8, 1, 28, 28)
    snn = ROBUSTNORM.convert(ann, {}, {"percentile": 99.9}, calibration=lambda n: calib[:n])
    assert not relu_layers(snn) and len(if_neurons(snn)) == 3
    x = calib[:3]
    runs = ROBUSTNORM.run(snn, x, 16, {"eval": {"chunk": 4}}, {"v0": [0, 0.5]}, None)
    for key, v0 in (("v0_0", 0.0), ("v0_half", 0.5)):
        for n in if_neurons(snn):
            n.v0_fraction = v0
        assert torch.equal(runs[key].outputs, per_step_loop(snn, x, 16))
