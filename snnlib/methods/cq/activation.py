"""CQ training (Yan, Zhou & Wong, AAAI 2021; docs/methods/cq.md, §2): the clamp-and-quantize activation and the
staged schedule. Algorithm 1 ("one iteration of CQ training") as reconstructed in docs/methods/cq.md, §2.5 [R]:

    a = clamp(z, 0, 1)                                  every hidden conv / fc layer, in place of ReLU  [C]
    h = Q_T(a) = floor(T * a + offset + guard) / T      offset 0 = floor (default, what the SNN computes), 0.5 = round
    dQ/da := 1                                          straight-through estimator (docs/methods/cq.md, §2.2),
                                                        optionally with the incoming gradient clipped to [-1, 1]
                                                        (the authors' 2022 code)

`guard` (default 2^-10, a thousandth of a spike) is our fix for the float32 grid pitfall (docs/methods/cq.md, §8.1):
in float32, floor(T * fl(k/T)) is k - 1 for about 4 % of the grid values k/T (T <= 1000), and an IF neuron summing
fl(k/T) T times loses a spike for about half of them. Every quantizer here and every IF neuron of the converted SNN
(which starts its membrane at offset + guard, conversion.py) computes the same floor(sum + offset + guard), so the
ANN and the SNN agree on grid values, while float32 rounding (well below 2^-10 of a spike for T <= 1000) cannot flip
a level.

Three kinds of quantizer site (docs/methods/cq.md, §2.3): `ClampQuantize` after every hidden layer (relu | clamp |
quantize by stage), and `GridQuantizer` sites after every average pooling (`quantize_pool`) and on the input pixels
(`quantize_input`), which are the identity except in the quantize stage. The input site becomes the spike encoder
of the SNN (encoding.py), the other two become IF neurons.

Stages (docs/methods/cq.md, §2.4, [C, I]): relu -> clamp -> quantize, each a fine-tune of the previous one
(training.py).
"""
from __future__ import annotations

import torch
from torch import nn

CQ_STAGES = ("relu", "clamp", "quantize")
ROUNDING_OFFSETS = {"floor": 0.0, "round": 0.5}
GRID_GUARD = 2.0 ** -10
SITES = ("input", "pool")


def grid_levels(a: torch.Tensor, T: int, offset: float = 0.0, guard: float = GRID_GUARD) -> torch.Tensor:
    """The integer level k in 0..T of `a` on the 1/T grid: floor(T * clamp(a, 0, 1) + offset + guard).

    This is also the spike count of a threshold-1 IF neuron that starts at v0 = offset + guard and receives
    T * a in total with the membrane staying in [0, 1) (docs/methods/cq.md, §4.8)."""
    return torch.floor(T * a.clamp(0.0, 1.0) + (offset + guard))


class _GridSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a, T, offset, guard, clip_grad):
        ctx.clip_grad = clip_grad
        return grid_levels(a, T, offset, guard) / T

    @staticmethod
    def backward(ctx, grad_out):
        grad = grad_out.clamp(-1.0, 1.0) if ctx.clip_grad else grad_out
        return grad, None, None, None, None


def quantize(a: torch.Tensor, T: int, offset: float = 0.0, guard: float = GRID_GUARD,
             clip_grad: bool = False) -> torch.Tensor:
    """Q_T(a) = grid_levels(a) / T in the forward pass, the identity in the backward pass (docs/methods/cq.md, §2.2:
    a plain torch.floor would have zero gradient and freeze every layer below the first quantizer)."""
    return _GridSTE.apply(a, int(T), float(offset), float(guard), bool(clip_grad))


def clamp_quantize(z: torch.Tensor, T: int, offset: float = 0.0, guard: float = GRID_GUARD,
                   clip_grad: bool = False) -> torch.Tensor:
    """CQ activation: clamp to [0, 1] (ordinary clamp gradient) then Q_T with a straight-through gradient."""
    return quantize(torch.clamp(z, 0.0, 1.0), T, offset, guard, clip_grad)


class _GridSite(nn.Module):
    """Shared state of the quantizer sites: the grid (T, rounding offset, guard) and the training stage."""

    def __init__(self, T: int = 64, rounding: str = "floor", guard: float = GRID_GUARD, clip_grad: bool = False):
        super().__init__()
        self.configure(T=T, rounding=rounding, guard=guard, clip_grad=clip_grad)
        self.stage = "quantize"

    def configure(self, *, T: int, rounding: str, guard: float, clip_grad: bool) -> None:
        if T < 1:
            raise ValueError(f"CQ needs T >= 1 quantization levels, got {T}")
        if rounding not in ROUNDING_OFFSETS:
            raise ValueError(f"unknown CQ rounding {rounding!r}; valid: {', '.join(ROUNDING_OFFSETS)}")
        self.T, self.rounding, self.guard, self.clip_grad = int(T), rounding, float(guard), bool(clip_grad)

    @property
    def offset(self) -> float:
        return ROUNDING_OFFSETS[self.rounding]

    @property
    def v0(self) -> float:
        """Initial membrane of the IF neuron that replaces this site: the SNN computes floor(sum + v0)."""
        return self.offset + self.guard

    def _q(self, x: torch.Tensor) -> torch.Tensor:
        return clamp_quantize(x, self.T, self.offset, self.guard, self.clip_grad)


class ClampQuantize(_GridSite):
    """Hidden-layer activation: ReLU (stage relu), clamp(0, 1) (stage clamp), clamp + Q_T (stage quantize)."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if self.stage == "quantize":
            return self._q(z)
        if self.stage == "clamp":
            return torch.clamp(z, 0.0, 1.0)
        if self.stage == "relu":
            return torch.relu(z)
        raise ValueError(f"unknown CQ stage {self.stage!r}; valid: {CQ_STAGES}")

    def extra_repr(self) -> str:
        return f"T={self.T}, rounding={self.rounding}, guard={self.guard:.3g}, stage={self.stage}"


class GridQuantizer(_GridSite):
    """Input or post-pooling quantizer site: clamp + Q_T in the quantize stage when enabled, else the identity.

    (In the relu and clamp stages the identity is what ReLU / clamp would compute anyway: pixels and averages of
    clamped activations already lie in [0, 1].)"""

    def __init__(self, site: str, enabled: bool = True, **grid):
        if site not in SITES:
            raise ValueError(f"unknown quantizer site {site!r}; valid: {SITES}")
        super().__init__(**grid)
        self.site = site
        self.enabled = bool(enabled)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._q(x) if (self.enabled and self.stage == "quantize") else x

    def extra_repr(self) -> str:
        return f"site={self.site}, enabled={self.enabled}, T={self.T}, rounding={self.rounding}, stage={self.stage}"


def cq_sites(model: nn.Module) -> list[_GridSite]:
    return [m for m in model.modules() if isinstance(m, _GridSite)]


def configure_cq(model: nn.Module, *, T: int, rounding: str = "floor", guard: float = GRID_GUARD,
                 clip_grad: bool = False, quantize_pool: bool = True, quantize_input: bool = True) -> nn.Module:
    """Set the grid of every quantizer site and switch the pool / input sites on or off."""
    for m in cq_sites(model):
        m.configure(T=T, rounding=rounding, guard=guard, clip_grad=clip_grad)
        if isinstance(m, GridQuantizer):
            m.enabled = quantize_pool if m.site == "pool" else quantize_input
    return model


def set_cq_stage(model: nn.Module, stage: str) -> nn.Module:
    """Put every quantizer site of `model` into one training stage (relu, clamp or quantize)."""
    if stage not in CQ_STAGES:
        raise ValueError(f"unknown CQ stage {stage!r}; valid: {CQ_STAGES}")
    for m in cq_sites(model):
        m.stage = stage
    return model
