"""Trainable activations of the ANNs that get converted.

QCFS (Bu et al., ICLR 2022, eq. 16; docs/methods/qcfs.md, §2-§3):

    a = lambda * clip(floor(z * L / lambda + 1/2) / L, 0, 1)

with one trainable scalar lambda per activation layer. We use the clamp-then-floor order of the authors' later
code, with the straight-through mask written out explicitly (docs/methods/qcfs.md, §3: the floor-then-clamp variant
depends on PyTorch's clamp boundary subgradient):

    u = z / lambda,   q = floor(clip(u, 0, 1) * L + 1/2) / L,   a = lambda * q
    da/dz      = 1[0 <= u <= 1]
    da/dlambda = q - u  inside [0, 1],  1 above it,  0 below it

`mode = "clip"` evaluates the same layer without the quantization, lambda * clip(z / lambda, 0, 1): the limit the
converted SNN tends to as T grows (docs/methods/qcfs.md, §5 and §10.2). `mode = "relu"` is plain ReLU (stage 1 of
CQ-style schedules).
"""
from __future__ import annotations

import torch
from torch import nn

ACTIVATION_MODES = ("qcfs", "clip", "relu")


class _QCFSFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z: torch.Tensor, lam: torch.Tensor, levels: int, shift: float):
        u = z / lam
        inside = (u >= 0) & (u <= 1)
        q = torch.floor(u.clamp(0.0, 1.0) * levels + shift) / levels
        ctx.save_for_backward(u, q, inside)
        return q * lam

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        u, q, inside = ctx.saved_tensors
        grad_z = grad_out * inside.to(grad_out.dtype)
        dlam = torch.where(inside, q - u, (u > 1).to(u.dtype))
        grad_lam = (grad_out * dlam).sum().reshape(1)
        return grad_z, grad_lam, None, None


def qcfs(z: torch.Tensor, lam: torch.Tensor, levels: int, shift: float = 0.5) -> torch.Tensor:
    """QCFS with the explicit straight-through estimator described in the module docstring."""
    return _QCFSFunction.apply(z, lam, levels, shift)


def clip_activation(z: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """The quantization-free network: lambda * clip(z / lambda, 0, 1), ordinary autograd."""
    return lam * torch.clamp(z / lam, 0.0, 1.0)


class QCFS(nn.Module):
    """One QCFS activation layer: a scalar trainable threshold `lam` and L quantization levels."""

    def __init__(self, levels: int = 4, lambda_init: float = 8.0, shift: float = 0.5):
        super().__init__()
        if levels < 1:
            raise ValueError(f"QCFS needs L >= 1 quantization levels, got {levels}")
        self.levels = int(levels)
        self.shift = float(shift)
        self.lam = nn.Parameter(torch.tensor([float(lambda_init)]))
        self.mode = "qcfs"

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if self.mode == "qcfs":
            return qcfs(z, self.lam, self.levels, self.shift)
        if self.mode == "clip":
            return clip_activation(z, self.lam)
        if self.mode == "relu":
            return torch.relu(z)
        raise ValueError(f"unknown activation mode {self.mode!r}; valid: {ACTIVATION_MODES}")

    def extra_repr(self) -> str:
        return f"L={self.levels}, lambda={self.lam.item():.4g}, mode={self.mode}"


def set_activation_mode(model: nn.Module, mode: str) -> nn.Module:
    """Switch every QCFS layer of `model` between the quantized, clip-only and ReLU forward."""
    if mode not in ACTIVATION_MODES:
        raise ValueError(f"unknown activation mode {mode!r}; valid: {ACTIVATION_MODES}")
    for m in model.modules():
        if isinstance(m, QCFS):
            m.mode = mode
    return model


def qcfs_layers(model: nn.Module) -> list[QCFS]:
    return [m for m in model.modules() if isinstance(m, QCFS)]
