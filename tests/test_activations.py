import pytest
import torch

from snnlib.methods.qcfs.activation import QCFS, qcfs, set_activation_mode


def test_qcfs_forward_matches_hand_computed_values():
    # lambda = 2, L = 4: outputs on the grid {0, .5, 1, 1.5, 2}; floor(z*L/lambda + 1/2)/L, clipped to [0, 1]
    z = torch.tensor([-1.0, 0.2, 0.3, 1.0, 1.7, 1.76, 5.0])
    expected = torch.tensor([0.0, 0.0, 0.5, 1.0, 1.5, 2.0, 2.0])
    assert torch.equal(qcfs(z, torch.tensor([2.0]), 4), expected)


def test_qcfs_gradient_is_straight_through_with_explicit_lambda_rule():
    z = torch.tensor([-1.0, 0.3, 1.0, 1.7, 5.0], requires_grad=True)
    lam = torch.tensor([2.0], requires_grad=True)
    qcfs(z, lam, 4).sum().backward()
    # d a / d z = 1 inside [0, lambda], else 0 (the floor passes gradients straight through)
    assert torch.equal(z.grad, torch.tensor([0.0, 1.0, 1.0, 1.0, 0.0]))
    # d a / d lambda = q - u inside (u = z/lambda, q the quantized level), 1 above, 0 below
    u = torch.tensor([0.15, 0.5, 0.85])
    q = torch.tensor([0.25, 0.5, 0.75])
    assert lam.grad.item() == pytest.approx(float((q - u).sum()) + 1.0, abs=1e-6)


def test_modes_clip_and_relu():
    layer = QCFS(levels=4, lambda_init=2.0)
    z = torch.tensor([-1.0, 0.3, 1.7, 5.0])
    set_activation_mode(layer, "clip")
    assert torch.allclose(layer(z), torch.tensor([0.0, 0.3, 1.7, 2.0]))
    set_activation_mode(layer, "relu")
    assert torch.equal(layer(z), torch.relu(z))
    with pytest.raises(ValueError, match="unknown activation mode"):
        set_activation_mode(layer, "tanh")


def test_qcfs_rejects_zero_levels():
    with pytest.raises(ValueError, match="L >= 1"):
        QCFS(levels=0)
