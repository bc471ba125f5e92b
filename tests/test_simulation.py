import pytest
import torch
from torch import nn

from snnlib.methods.qcfs.activation import QCFS
from snnlib.conversion import ConversionError, fold_batchnorm
from snnlib.methods.qcfs.conversion import convert
from snnlib.models import create_model
from snnlib.neurons import if_neurons
from snnlib.engine import cumulative_predictions, reset, run_steps, simulate
from snnlib.methods.srp.algorithm import simulate_srp


def random_qcfs(name, ch=1, size=28, classes=10):
    m = create_model(name, num_classes=classes, in_channels=ch, image_size=size, act=lambda: QCFS(4, 1.0))
    for mod in m.modules():  # non-trivial BN statistics, so the affine map matters
        if isinstance(mod, nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.2, 0.2)
            mod.running_var.uniform_(0.5, 1.5)
    return m.eval()


@pytest.mark.parametrize("name,ch,size", [("lenet", 1, 28), ("vgg_mini", 1, 28), ("resnet20", 3, 32)])
def test_chunked_multi_step_matches_per_step_loop(name, ch, size):
    # Bit for bit on the CPU: in exact mode every conv / linear call sees the per-step loop's B rows (a GEMM on
    # a larger batch may block differently and change the last bit; docs/engine.md), the rest is elementwise.
    snn = convert(random_qcfs(name, ch, size))
    x = torch.rand(4, ch, size, size)
    per_step = simulate_srp(snn, x, 12, [0, 3], chunk=1)
    for chunk in (2, 5, 12):
        chunked = simulate_srp(snn, x, 12, [0, 3], chunk=chunk)
        for tau in (0, 3):
            assert torch.equal(per_step[tau], chunked[tau]), (chunk, tau)


def test_cumulative_sweep_equals_separate_simulations():
    snn = convert(random_qcfs("lenet"))
    x = torch.rand(8, 1, 28, 28)
    full = cumulative_predictions(simulate(snn, x, 16)[""])
    full_sum = simulate(snn, x, 16)[""].cumsum(0)
    for T in range(1, 17):
        reset(snn)
        separate = run_steps(snn, x, T).sum(0)
        assert torch.equal(separate.argmax(-1), full[T - 1])
        assert torch.allclose(separate, full_sum[T - 1], rtol=0, atol=1e-5)


def test_conversion_copies_thresholds_and_leaves_ann_untouched():
    ann = random_qcfs("lenet")
    for i, m in enumerate(m for m in ann.modules() if isinstance(m, QCFS)):
        m.lam.data.fill_(0.5 + i)
    snn = convert(ann)
    assert [float(n.theta) for n in if_neurons(snn)] == [0.5, 1.5, 2.5]
    assert all(n.v0_fraction == 0.5 for n in if_neurons(snn))
    assert sum(isinstance(m, QCFS) for m in ann.modules()) == 3


def test_conversion_rejects_unconvertible_models():
    with pytest.raises(ConversionError, match="max pooling"):
        convert(nn.Sequential(nn.Conv2d(1, 2, 3), QCFS(), nn.MaxPool2d(2)))
    with pytest.raises(ConversionError, match="ReLU"):
        convert(nn.Sequential(nn.Linear(2, 2), nn.ReLU(), QCFS()))
    with pytest.raises(ConversionError, match="no QCFS"):
        convert(nn.Sequential(nn.Linear(2, 2)))
    bad = nn.Sequential(nn.Linear(2, 2), QCFS(lambda_init=1.0))
    bad[1].lam.data.fill_(-0.5)
    with pytest.raises(ConversionError, match="lambda"):
        convert(bad)


def test_fold_batchnorm_is_exact_to_float_tolerance():
    m = random_qcfs("vgg_mini")
    x = torch.randn(5, 1, 28, 28)
    folded = fold_batchnorm(m)
    assert not any(isinstance(mod, nn.BatchNorm2d) for mod in folded.modules())
    assert torch.allclose(m(x), folded(x), atol=1e-5)
