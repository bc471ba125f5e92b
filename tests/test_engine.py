"""The multi-step engine against the papers' per-step loop (engine.per_step_loop), bit for bit on the CPU.

Random converted networks: VGG, ResNet (residual additions, projection shortcuts), CQ nets (IF input encoder,
folded BN, BatchNorm1d). Every chunk size, stacked or sequential SRP phases, the shared-prefix QCFS + SRP sweep
and the compiled IF scan must all give exactly the loop's float32 outputs, as must generic branches (any mask
rule, forks at any step). No test needs a GPU."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from snnlib.methods.qcfs.activation import QCFS
from snnlib.methods.qcfs.conversion import convert
from snnlib.methods.cq.activation import ClampQuantize, configure_cq, set_cq_stage
from snnlib.methods.cq.conversion import convert_cq, spike_counts
from snnlib.methods.cq.encoding import SpikeEncoder
from snnlib.models import create_model
from snnlib.neurons import IFNeuron, if_neurons
from snnlib.engine import (Branch, Plan, batch_invariant, cached_plan, core, fused_scan, gemm_batching, per_step_loop,
                           reset, run_steps, simulate)
from snnlib.methods.srp.algorithm import per_step_srp, simulate_srp


def _randomize_bn(model: nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=g) * 0.4 - 0.2)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)


def qcfs_snn(name: str, ch: int, size: int, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    ann = create_model(name, num_classes=10, in_channels=ch, image_size=size, act=lambda: QCFS(4, 1.0))
    _randomize_bn(ann, seed)
    for i, q in enumerate(m for m in ann.modules() if isinstance(m, QCFS)):
        q.lam.data.fill_(0.6 + 0.1 * (i % 5))  # distinct thresholds per layer
    return convert(ann.eval())


def cq_snn(name: str, ch: int, size: int, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    ann = create_model(name, num_classes=10, in_channels=ch, image_size=size, act=ClampQuantize)
    configure_cq(ann, T=16)
    _randomize_bn(ann, seed)
    return convert_cq(set_cq_stage(ann, "quantize").eval())


NETWORKS = {
    "vgg_mini": lambda: (qcfs_snn("vgg_mini", 1, 28), (1, 28, 28)),
    "vgg11": lambda: (qcfs_snn("vgg11", 3, 32), (3, 32, 32)),
    "resnet20": lambda: (qcfs_snn("resnet20", 3, 32), (3, 32, 32)),
    "lenet_cq": lambda: (cq_snn("lenet_cq", 1, 28), (1, 28, 28)),
    "mnist7_cq": lambda: (cq_snn("mnist7_cq", 1, 28), (1, 28, 28)),
}


@pytest.mark.parametrize("name", list(NETWORKS))
@pytest.mark.parametrize("batch", [1, 3])
def test_engine_equals_per_step_loop_bitwise(name, batch):
    snn, shape = NETWORKS[name]()
    x = torch.rand(batch, *shape, generator=torch.Generator().manual_seed(batch))
    T = 10
    loop = per_step_loop(snn, x, T)
    for chunk in (1, 3, 4, T):
        assert torch.equal(simulate(snn, x, T, chunk=chunk)[""], loop), chunk
        reset(snn)
        assert torch.equal(run_steps(snn, x, T, chunk=chunk), loop), chunk
    reset(snn)


@pytest.mark.parametrize("name", ["vgg_mini", "resnet20", "lenet_cq"])
@pytest.mark.parametrize("rule", ["reference", "exact"])
def test_shared_prefix_sweep_equals_separate_runs_bitwise(name, rule):
    snn, shape = NETWORKS[name]()
    x = torch.rand(4, *shape, generator=torch.Generator().manual_seed(7))
    T, taus = 9, [0, 1, 2, 4, 8]
    separate = {t: simulate_srp(snn, x, T, [t], rule, chunk=1)[t] for t in taus}
    for t in taus:
        assert torch.equal(separate[t], per_step_srp(snn, x, T, t, rule)), t
    for plan in (Plan(chunk=1), Plan(chunk=4), Plan(chunk=4, batch_runs=True), Plan(chunk=9, batch_runs=True)):
        combined = simulate_srp(snn, x, T, taus, rule, plan=plan)
        assert sorted(combined) == taus
        for t in taus:
            assert torch.equal(combined[t], separate[t]), (plan, t)
    assert all(n.mask is None and n.v is None for n in if_neurons(snn))  # nothing leaks into later runs


def test_tau_longer_than_the_run_and_sweep_without_plain_qcfs():
    snn, shape = NETWORKS["vgg_mini"]()
    x = torch.rand(2, *shape)
    out = simulate_srp(snn, x, 3, [0, 5, 8], chunk=2)
    assert out[0].shape[0] == 3 and torch.equal(out[0], per_step_loop(snn, x, 3))
    for t in (5, 8):
        assert torch.equal(out[t], per_step_srp(snn, x, 3, t))
    only_srp = simulate_srp(snn, x, 6, [2, 4], plan=Plan(chunk=3, batch_runs=True))
    assert sorted(only_srp) == [2, 4] and torch.equal(only_srp[4], per_step_srp(snn, x, 6, 4))


def _above_a_quarter(v, theta, count):
    return (v > 0.25 * theta).float()


def _even_count(v, theta, count):
    return (count % 2 == 0).float()


GENERIC = {"quarter2": Branch(2, _above_a_quarter), "even2": Branch(2, _even_count, counts=True),
           "even5": Branch(5, _even_count, counts=True), "quarter11": Branch(11, _above_a_quarter)}


@pytest.mark.parametrize("name", ["vgg_mini", "lenet_cq"])
def test_generic_branches_equal_the_reference_loop_bitwise(name):
    """Any mask rule, forks before, at and after the run's end, with and without the plain run, stacked or not."""
    snn, shape = NETWORKS[name]()
    x = torch.rand(2, *shape, generator=torch.Generator().manual_seed(5))
    T = 7
    loop = {k: per_step_loop(snn, x, T, prerun=b.after, mask=b.mask) for k, b in GENERIC.items()}
    loop[""] = per_step_loop(snn, x, T)
    for plain, plan in ((True, Plan(chunk=1)), (True, Plan(chunk=3, batch_runs=True)), (False, Plan(chunk=4))):
        out = simulate(snn, x, T, GENERIC, plain=plain, plan=plan)
        assert list(out) == ([""] if plain else []) + list(GENERIC) and out.steps is None
        for key, result in out.items():
            assert torch.equal(result, loop[key]), (plain, plan, key)
    assert all(n.mask is None and n.v is None for n in if_neurons(snn))


def test_steps_of_an_observed_simulation():
    """Hooks attached: everything runs in order, one key after another, and `steps` says which calls fed which."""
    snn = qcfs_snn("lenet", 1, 28)
    x = torch.rand(2, 1, 28, 28)
    handle = if_neurons(snn)[0].register_forward_hook(lambda mod, inp, out: None)
    try:
        out = simulate(snn, x, 4, {"a": GENERIC["even5"], "b": GENERIC["quarter2"]}, chunk=3)
        only = simulate(snn, x, 4, {"b": GENERIC["quarter2"]}, plain=False, chunk=3)
    finally:
        handle.remove()
    # plain run to step 5 (the latest fork), then a's and b's masked runs of 4 steps each
    assert out.steps == {"": [0, 1, 2, 3], "a": [0, 1, 2, 3, 4, 5, 6, 7, 8], "b": [0, 1, 9, 10, 11, 12]}
    assert only.steps == {"b": [0, 1, 2, 3, 4, 5]}
    assert torch.equal(out["b"], only["b"])


def test_branch_arguments_are_checked():
    snn = qcfs_snn("lenet", 1, 28)
    x = torch.rand(1, 1, 28, 28)
    with pytest.raises(ValueError, match="after"):
        simulate(snn, x, 2, {"a": Branch(0, _above_a_quarter)})
    with pytest.raises(ValueError, match="non-empty"):
        simulate(snn, x, 2, {"": Branch(1, _above_a_quarter)})
    with pytest.raises(ValueError, match="nothing to simulate"):
        simulate(snn, x, 2, plain=False)
    with pytest.raises(ValueError, match="pre-run"):
        per_step_loop(snn, x, 2, prerun=1)
    given = []
    simulate(snn, x, 2, {"a": Branch(1, lambda v, theta, count: given.append(count) or v > 0)}, plain=False)
    assert given and all(count is None for count in given)  # no spike counts unless the branch asks for them


def test_the_engine_knows_no_method():
    """Methods plug in through Branch and the neurons' own hooks: nothing under snnlib/engine imports them."""
    import pathlib
    import snnlib.engine
    for path in pathlib.Path(snnlib.engine.__file__).parent.glob("*.py"):
        imports = [line for line in path.read_text().splitlines() if line.lstrip().startswith(("import", "from"))]
        assert not [line for line in imports if "methods" in line], path


def test_every_chunk_size_gives_identical_results():
    snn, shape = NETWORKS["resnet20"]()
    x = torch.rand(2, *shape)
    T = 12
    reference = simulate_srp(snn, x, T, [0, 3], chunk=1)
    for chunk in range(2, T + 1):
        for exact_slices in (True,):
            out = simulate_srp(snn, x, T, [0, 3], plan=Plan(chunk=chunk, exact=exact_slices))
            assert torch.equal(out[0], reference[0]) and torch.equal(out[3], reference[3]), chunk


class _CallLog(TorchFunctionMode):
    def __init__(self):
        super().__init__()
        self.calls: list[tuple] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in (F.conv2d, F.linear):
            self.calls.append((func.__name__, tuple(args[0].shape)))
        return func(*args, **(kwargs or {}))


def test_first_layer_runs_once():
    snn = qcfs_snn("lenet", 1, 28)
    x = torch.rand(4, 1, 28, 28)
    log = _CallLog()
    with log:
        out = simulate_srp(snn, x, 8, [0, 2, 4], plan=Plan(chunk=4, batch_runs=True))
    assert log.calls.count(("conv2d", (4, 1, 28, 28))) == 1  # once for the plain run and both SRP phases
    assert torch.equal(out[4], per_step_srp(snn, x, 8, 4))


@pytest.mark.parametrize("invariant", [False, True])
def test_gemms_run_batched_only_where_batch_invariant(monkeypatch, invariant):
    """Where a GEMM is not batch invariant it sees the per-step loop's B rows; where it is, the whole chunk."""
    monkeypatch.setattr(core, "batch_invariant", lambda *args: invariant)
    snn = qcfs_snn("lenet", 1, 28)
    x = torch.rand(4, 1, 28, 28)
    log = _CallLog()
    with log:
        simulate(snn, x, 8, plan=Plan(chunk=4))
    rows = {shape[0] for name, shape in log.calls if shape[1:] != (1, 28, 28)}
    assert rows == ({16} if invariant else {4})


def test_batch_invariance_probe_on_this_machine():
    """The probe's verdicts are what the engine relies on: a batched call that it accepts reproduces the slices."""
    x = torch.rand(24, 64)
    weight, bias = torch.randn(32, 64), torch.randn(32)
    verdict = batch_invariant(F.linear, (x, weight, bias), {}, 8)
    batched = F.linear(x, weight, bias)
    sliced = torch.cat([F.linear(p.clone(), weight, bias) for p in x.split(8)])
    if verdict:
        assert torch.equal(batched, sliced)
    assert any(row["function"] == "linear" for row in gemm_batching())


def test_observed_networks_keep_the_multi_step_layout():
    """With hooks attached (op counters, input recorders) every module sees [steps * B] inputs, as before."""
    snn = qcfs_snn("lenet", 1, 28)
    x = torch.rand(3, 1, 28, 28)
    seen = []
    handle = if_neurons(snn)[0].register_forward_pre_hook(
        lambda mod, inp: seen.append((mod.steps, inp[0].shape[0])))
    try:
        reset(snn)
        out = run_steps(snn, x, 8, chunk=4)
    finally:
        handle.remove()
    assert seen == [(4, 12), (4, 12)]
    reset(snn)
    assert torch.equal(out, per_step_loop(snn, x, 8))


def test_spike_counts_after_run_steps_match_the_loop():
    snn = cq_snn("lenet_cq", 1, 28)
    x = torch.rand(5, 1, 28, 28)
    reset(snn)
    run_steps(snn, x, 7, chunk=3)
    counts = spike_counts(snn)
    assert isinstance(if_neurons(snn)[0], SpikeEncoder)
    reference = copy_counts_of_loop(snn, x, 7)
    for name, c in counts.items():
        assert torch.equal(c, reference[name]), name
    reset(snn)


def copy_counts_of_loop(snn, x, T):
    """Spike counts by layer name after T steps of the plain loop (one network call per step)."""
    reset(snn)
    for _ in range(T):
        run_steps(snn, x, 1, chunk=1)
    counts = spike_counts(snn)
    reset(snn)
    return counts


def test_if_layer_layouts_agree():
    """Constant input broadcast over steps and stacked runs == the same input repeated, per run."""
    theta, x = 0.7, torch.randn(3, 5)
    plain = IFNeuron(theta)
    plain.steps = 6
    repeated = plain(x.repeat(6, 1)).reshape(6, 3, 5)
    stacked = IFNeuron(theta)
    stacked.steps, stacked.rows = 6, 6  # two stacked runs of the 3 rows
    stacked.mask = torch.cat([torch.ones(3, 5), (torch.rand(3, 5) > 0.5).float()])
    out = stacked(x).reshape(6, 2, 3, 5)
    assert torch.equal(out[:, 0], repeated)
    assert torch.equal(out[:, 1], repeated * stacked.mask[3:])
    assert torch.equal(stacked.v[:3], plain.v) and torch.equal(stacked.v[3:], plain.v)


def test_in_place_change_of_the_shared_input_is_refused():
    class Bad(nn.Module):
        def forward(self, x):
            return x.mul_(2)
    snn = nn.Sequential(nn.Linear(4, 4), Bad(), IFNeuron(1.0), nn.Linear(4, 2))
    with pytest.raises(RuntimeError, match="in place"):
        simulate(snn, torch.rand(2, 4), 3, chunk=1)


def test_inexact_batched_gemms_stay_within_float_rounding():
    """exact=False (the GPU mode) on the CPU: whole-chunk GEMMs change only the last bits here."""
    snn, shape = NETWORKS["vgg11"]()
    x = torch.rand(2, *shape)
    exact = simulate(snn, x, 8, chunk=8)[""]
    batched = simulate(snn, x, 8, plan=Plan(chunk=8, exact=False))[""]
    torch.testing.assert_close(batched, exact, rtol=0, atol=1e-4)


def test_chunk_auto_measures_and_keeps_results():
    snn, shape = NETWORKS["vgg_mini"]()
    x = torch.rand(2, *shape)
    loop = {t: per_step_srp(snn, x, 12, t) for t in (0, 1, 2, 4)}
    for _ in range(3):
        out = simulate_srp(snn, x, 12, [0, 1, 2, 4], chunk="auto")
        assert all(torch.equal(out[t], loop[t]) for t in loop)
    plan = cached_plan(snn, x, runs=3)
    assert plan is not None and plan.exact and plan.chunk >= 1 and plan.batch_runs is not None


@pytest.mark.slow
def test_compiled_scan_equals_eager_scan():
    scan = fused_scan(torch.device("cpu"))
    snn, shape = NETWORKS["resnet20"]()
    x = torch.rand(2, *shape)
    out = simulate_srp(snn, x, 6, [0, 2], "exact", plan=Plan(chunk=3, fused_scan=True, batch_runs=True))
    if scan.broken:
        pytest.skip(f"torch.compile unavailable here: {scan.broken}")
    assert torch.equal(out[0], per_step_loop(snn, x, 6))
    assert torch.equal(out[2], per_step_srp(snn, x, 6, 2, "exact"))


def test_bf16_switch_keeps_the_membrane_in_float32():
    snn = qcfs_snn("lenet", 1, 28)
    x = torch.rand(2, 1, 28, 28)
    seen = []
    handle = if_neurons(snn)[1].register_forward_hook(lambda mod, inp, out: seen.append((inp[0].dtype, mod.v.dtype)))
    try:
        out = simulate(snn, x, 4, plan=Plan(chunk=2, precision="bf16"))[""]
    finally:
        handle.remove()
    assert seen and all(d_in == torch.bfloat16 and d_v == torch.float32 for d_in, d_v in seen)
    assert torch.isfinite(out.float()).all()


@pytest.mark.parametrize("chunk", [1, 4])
def test_channels_last_engine_equals_the_loop_on_the_same_layout(chunk):
    """memory_format: channels_last changes the convolutions' rounding, so the engine must match the per-step
    loop run on the same channels_last network and input, bit for bit, and stay in that layout."""
    from snnlib.experiment_data import in_layout
    snn, shape = NETWORKS["vgg_mini"]()
    snn = in_layout(snn, {"memory_format": "channels_last"})
    conv = next(m for m in snn.modules() if isinstance(m, nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.rand(6, *shape, generator=torch.Generator().manual_seed(3)).contiguous(memory_format=torch.channels_last)
    ours = simulate(snn, x, 12, chunk=chunk)[""]
    assert torch.equal(ours, per_step_loop(snn, x, 12))
    assert in_layout(snn, {"memory_format": "contiguous"}) is snn  # the default layout leaves the model alone
