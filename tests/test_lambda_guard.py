"""The lambda guard (snnlib/methods/qcfs/guard.py): a tiny deterministic network whose one QCFS lambda the loss
pushes down hard enough to cross zero in one SGD step. The papers' plain parameter (mode none) goes negative and
conversion refuses it; floor and softplus keep it positive and the model converts."""
import pytest
import torch
from torch import nn

from snnlib.config import ConfigError, validate
from snnlib.conversion import ConversionError
from snnlib.methods.qcfs.activation import QCFS, qcfs_layers
from snnlib.methods.qcfs.conversion import convert
from snnlib.methods.qcfs.guard import LambdaGuard
from snnlib.neurons import IFNeuron
from snnlib.methods.qcfs import guard_of
from snnlib.training import TrainSettings, make_optimizer, train


def pushed_down_net() -> nn.Sequential:
    """input 2 -> x1 -> QCFS(lambda 1) -> logits (-a, +a), every label 0.

    z / lambda = 2 > 1, so the QCFS output is a = lambda and da/dlambda = 1; d loss / d a = 1 + p1 - p0 = 1.76 > 0:
    SGD at lr 10 moves lambda by about -17.6, far below zero."""
    net = nn.Sequential(nn.Flatten(), nn.Linear(1, 1, bias=False), QCFS(levels=4, lambda_init=1.0),
                        nn.Linear(1, 2, bias=False))
    with torch.no_grad():
        net[1].weight.fill_(1.0)
        net[3].weight.copy_(torch.tensor([[-1.0], [1.0]]))
    return net


def run(tmp_path, guard: LambdaGuard, lr=10.0, epochs=1, net=None, ckpt="state.pt") -> nn.Module:
    net = pushed_down_net() if net is None else net
    x = torch.full((8, 1, 1, 1), 2, dtype=torch.uint8)
    y = torch.zeros(8, dtype=torch.int64)
    s = TrainSettings(epochs=epochs, batch_size=8, lr=lr, momentum=0.9, weight_decay=5e-4, schedule="constant",
                      lambda_guard=guard)
    train(net, x, y, lambda xb: xb.float(), s, seed=0, ckpt_path=tmp_path / ckpt, log=lambda _: None)
    return net


def lam(net) -> float:
    return qcfs_layers(net)[0].lam.item()


def test_old_path_drives_lambda_negative_and_conversion_refuses(tmp_path):
    net = run(tmp_path, LambdaGuard(mode="none"))
    assert lam(net) < -10
    with pytest.raises(ConversionError, match="lambda"):
        convert(net)


def test_floor_keeps_lambda_at_its_floor_and_the_model_converts(tmp_path):
    net = run(tmp_path, LambdaGuard(mode="floor", min=1e-3))
    assert lam(net) == pytest.approx(1e-3)
    snn = convert(net)
    assert [float(m.theta) for m in snn.modules() if isinstance(m, IFNeuron)] == [pytest.approx(1e-3)]


def test_default_guard_is_the_floor(tmp_path):
    assert TrainSettings(epochs=1).lambda_guard == LambdaGuard(mode="floor", min=1e-3)
    assert lam(run(tmp_path, TrainSettings(epochs=1).lambda_guard)) > 0


def test_softplus_keeps_lambda_positive_and_leaves_a_plain_lam(tmp_path):
    net = run(tmp_path, LambdaGuard(mode="softplus"))
    assert 0 < lam(net) < 1.0  # pushed down, never through zero
    state = net.state_dict()
    assert "2.lam" in state and not any("parametrizations" in k for k in state)
    assert isinstance(qcfs_layers(net)[0].lam, nn.Parameter)
    convert(net)


def test_softplus_resumes_from_its_checkpoint_bit_for_bit(tmp_path):
    g = LambdaGuard(mode="softplus")
    whole = run(tmp_path, g, lr=0.5, epochs=3, ckpt="whole.pt")
    run(tmp_path, g, lr=0.5, epochs=1, ckpt="split.pt")
    resumed = run(tmp_path, g, lr=0.5, epochs=3, ckpt="split.pt")  # a fresh network, epochs 2-3 from the file
    for k, v in whole.state_dict().items():
        assert torch.equal(v, resumed.state_dict()[k]), k


def test_lambda_group_has_its_own_lr_and_weight_decay(tmp_path):
    net = pushed_down_net()
    s = TrainSettings(epochs=1, lr=10.0, weight_decay=5e-4, lambda_guard=LambdaGuard(lr_scale=1e-3, weight_decay=0.0))
    opt, _ = make_optimizer(net, s)
    weights, lams = opt.param_groups
    assert weights["lr"] == 10.0 and weights["weight_decay"] == 5e-4 and len(weights["params"]) == 2
    assert lams["lr"] == pytest.approx(1e-2) and lams["weight_decay"] == 0.0
    assert lams["params"] == [qcfs_layers(net)[0].lam]
    # at 1/1000 of the rate the same step only nudges lambda (no guarantee in general: hence the floor stays on)
    assert 0.9 < lam(run(tmp_path, LambdaGuard(mode="none", lr_scale=1e-3))) < 1.0
    assert len(make_optimizer(net, TrainSettings(epochs=1))[0].param_groups) == 1  # the old optimizer otherwise


def test_floor_is_bit_identical_to_the_old_path_while_lambda_stays_above_it(tmp_path):
    """What keeps the default runs' numbers: the floor never fires there."""
    def net():
        torch.manual_seed(0)
        return nn.Sequential(nn.Flatten(), nn.Linear(4, 8), QCFS(4, 1.0), nn.Linear(8, 3))
    x = torch.randint(0, 255, (64, 1, 2, 2), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
    y = torch.randint(0, 3, (64,), generator=torch.Generator().manual_seed(2))
    nets = {}
    for mode in ("none", "floor"):
        nets[mode] = net()
        s = TrainSettings(epochs=2, batch_size=16, lr=0.05, lambda_guard=LambdaGuard(mode=mode))
        train(nets[mode], x, y, lambda xb: xb.float() / 255, s, 0, tmp_path / f"{mode}.pt", log=lambda _: None)
    assert lam(nets["none"]) > 1e-3
    for k, v in nets["none"].state_dict().items():
        assert torch.equal(v, nets["floor"].state_dict()[k]), k


def test_config_keys_defaults_and_validation():
    raw = {"name": "t", "experiments": {
        "q": {"dataset": "mnist", "model": "lenet", "train": {"epochs": 1}},
        "c": {"methods": {"cq": {}}, "dataset": "mnist", "model": "lenet_cq", "normalize": False, "train": {}}}}
    exps = validate(raw)["experiments"]
    act = exps["q"]["activation"]
    assert act["lambda_guard"] == {"mode": "floor", "min": 1e-3}
    assert act["lambda_lr_scale"] == 1.0 and act["lambda_weight_decay"] is None
    assert guard_of(exps["q"]) == LambdaGuard()
    assert "lambda_guard" not in exps["c"]["activation"]  # CQ trains no lambda: its recipe hash is unchanged
    raw["experiments"]["q"]["activation"] = {"lambda_guard": {"mode": "softplus"}, "lambda_lr_scale": 0.1,
                                             "lambda_weight_decay": 0}
    assert guard_of(validate(raw)["experiments"]["q"]) == LambdaGuard("softplus", 1e-3, 0.1, 0)
    for bad in ({"lambda_guard": {"mode": "clamp"}}, {"lambda_guard": {"min": 0}}, {"lambda_lr_scale": 0}):
        raw["experiments"]["q"]["activation"] = bad
        with pytest.raises(ConfigError, match="lambda"):
            validate(raw)
