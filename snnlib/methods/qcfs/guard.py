"""Keeping the QCFS thresholds lambda positive while the ANN trains (docs/methods/qcfs.md, "Keeping lambda positive").

lambda becomes the IF threshold theta of the converted SNN, so it must end training > 0; conversion refuses the
model otherwise. Its gradient is a sum over every element of its layer (batch x channels x positions), so with the
weights' learning rate one SGD step can carry it past zero (ResNet-20 at lr 0.1: -0.42 and -1.97 after one epoch).

    mode "none"      the plain parameter, as the papers train it (no guarantee)
    mode "floor"     after every optimizer step lambda <- max(lambda, min): projected SGD. Bit-identical to "none"
                     for as long as no lambda reaches `min`, so runs that never needed it are unchanged
    mode "softplus"  the optimizer sees rho with lambda = softplus(rho) > 0; weight decay then acts on rho, and the
                     step on lambda shrinks by sigmoid(rho)^2, which changes the dynamics of every run

Independently, `lr_scale` and `weight_decay` give the lambdas their own SGD parameter group (the learning rate times
lr_scale; their own weight decay, None = the weights'). That slows lambda down but guarantees nothing by itself.

Under "softplus" the parametrization lives only while `train` runs: `release` bakes it back into a plain parameter
`lam`, so saved models, conversion (`m.lam`) and analysis see the same state as under the other modes. Training
checkpoints written mid-run hold rho (`parametrizations.lam.original`); a resumed run installs the parametrization
before loading them.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from .activation import qcfs_layers

GUARD_MODES = ("none", "floor", "softplus")


@dataclass(frozen=True)
class LambdaGuard:
    mode: str = "floor"
    min: float = 1e-3  # the floor (mode floor); also the least lambda softplus' inverse is asked to represent
    lr_scale: float = 1.0
    weight_decay: float | None = None  # None: the same weight decay as the weights

    def __post_init__(self) -> None:
        if self.mode not in GUARD_MODES:
            raise ValueError(f"unknown lambda guard mode {self.mode!r}; valid: {', '.join(GUARD_MODES)}")
        if not self.min > 0:
            raise ValueError(f"lambda guard min must be > 0, got {self.min}")
        if not self.lr_scale > 0:
            raise ValueError(f"lambda lr_scale must be > 0, got {self.lr_scale}")

    def own_group(self, weight_decay: float) -> bool:
        """Whether the lambdas need an SGD parameter group of their own (else one group keeps the old optimizer)."""
        return self.lr_scale != 1.0 or (self.weight_decay is not None and self.weight_decay != weight_decay)


class _Softplus(nn.Module):
    def __init__(self, least: float):
        super().__init__()
        self.least = float(least)

    def forward(self, rho: torch.Tensor) -> torch.Tensor:
        return F.softplus(rho)

    def right_inverse(self, lam: torch.Tensor) -> torch.Tensor:
        lam = lam.clamp_min(self.least)
        return lam + torch.log(-torch.expm1(-lam))  # softplus^-1, stable for small and large lambda


def lambda_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The tensors the optimizer updates for the lambdas: `lam`, or rho under the softplus parametrization."""
    out = []
    for m in qcfs_layers(model):
        out.append(m.parametrizations.lam.original if parametrize.is_parametrized(m, "lam") else m.lam)
    return out


def install(model: nn.Module, guard: LambdaGuard) -> nn.Module:
    """Before the optimizer is built: put the softplus parametrization on every QCFS lambda (other modes: nothing)."""
    if guard.mode == "softplus":
        for m in qcfs_layers(model):
            if not parametrize.is_parametrized(m, "lam"):
                parametrize.register_parametrization(m, "lam", _Softplus(guard.min))
    return model


@torch.no_grad()
def after_step(model: nn.Module, guard: LambdaGuard) -> None:
    """After every optimizer step: the floor's projection (other modes: nothing)."""
    if guard.mode == "floor":
        for m in qcfs_layers(model):
            m.lam.clamp_(min=guard.min)


def release(model: nn.Module) -> nn.Module:
    """After training: every parametrized lambda becomes a plain parameter `lam` holding its value."""
    for m in qcfs_layers(model):
        if parametrize.is_parametrized(m, "lam"):
            parametrize.remove_parametrizations(m, "lam", leave_parametrized=True)
    return model
