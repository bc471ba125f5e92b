"""Low-precision synaptic weights without retraining (docs/methods/cq.md, §4.4; the paper's 9-bit / 8-bit VGG-19
claim).

Per layer, the weights and the bias share one scale f = max(max |W|, max |b|) and are rounded to the symmetric
n-bit codes -(2^(n-1) - 1) .. 2^(n-1) - 1, i.e. 2^n - 1 levels with step f / (2^(n-1) - 1):

    w_q = round(w / step) * step

The authors' code [C] divides W and b by f (and the next threshold by f, which leaves the spike trains unchanged)
and rounds to step 2^(1-n); CQ+ [C+] first scales by 1 - 2^(1-n) so that the largest weight gets a code instead of
needing one more bit. That is the scheme above (the same step), with the result multiplied back by f so the
IF thresholds stay at 1. The final non-spiking classifier keeps float weights unless `include_output` (the
authors' scripts do not normalise it [C]). bits = 32 means float32, unchanged.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

FLOAT_BITS = 32
_LAYERS = (nn.Conv2d, nn.Linear)


def max_code(bits: int) -> int:
    """Largest integer code of a symmetric `bits`-bit weight: 2^(bits-1) - 1."""
    if bits < 2:
        raise ValueError(f"weight quantization needs at least 2 bits (sign + magnitude), got {bits}")
    return 2 ** (bits - 1) - 1


def num_levels(bits: int) -> int:
    """Number of distinct values a quantized layer can hold: 2^bits - 1 (codes -max_code..max_code)."""
    return 2 * max_code(bits) + 1


def quantize_tensor(w: torch.Tensor, bits: int, scale: float) -> torch.Tensor:
    """round(w / step) * step with step = scale / max_code(bits); |w| <= scale never clips."""
    step = scale / max_code(bits)
    return torch.round(w / step).clamp(-max_code(bits), max_code(bits)) * step


def layer_scale(layer: nn.Module) -> float:
    values = [layer.weight.detach().abs().max()]
    if layer.bias is not None:
        values.append(layer.bias.detach().abs().max())
    return float(max(values))


def quantize_weights(model: nn.Module, bits: int, include_output: bool = False) -> nn.Module:
    """A copy of `model` with the weights and biases of every conv / linear layer rounded to `bits` bits, one
    scale per layer; the last such layer (the readout) is kept in float unless `include_output`."""
    if bits == FLOAT_BITS:
        return model
    model = copy.deepcopy(model)
    layers = [m for m in model.modules() if isinstance(m, _LAYERS)]
    if not include_output:
        layers = layers[:-1]
    with torch.no_grad():
        for layer in layers:
            scale = layer_scale(layer)
            if scale == 0:
                continue
            layer.weight.copy_(quantize_tensor(layer.weight, bits, scale))
            if layer.bias is not None:
                layer.bias.copy_(quantize_tensor(layer.bias, bits, scale))
    return model
