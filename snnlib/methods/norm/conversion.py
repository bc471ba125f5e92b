"""Data-based normalisation of a ReLU ANN into an IF SNN (docs/methods/norm.md).

Two steps:

scales   -> `activation_scales`: for every ReLU layer l, in module order, one number lambda_l measured on
            calibration images with the ANN as trained (nothing clipped):
              MaxNorm     (Diehl et al., IJCNN 2015):        lambda_l = max of the layer's outputs
              RobustNorm  (Rueckauer et al., Front. Neurosci. 2017): lambda_l = p-th percentile of them (p = 99.9)
convert  -> `convert_relu`: every ReLU becomes an IF layer (reset by subtraction) with threshold theta_l = lambda_l
            and initial membrane v0 = v0_fraction * theta_l; weights, biases and BatchNorm stay as they are
            (BN acts in eval mode as the fixed affine map of its running statistics, as in the QCFS conversion).

Why a threshold instead of rescaled weights. The papers keep threshold 1 and rescale the parameters of layer l,
W_l -> W_l * lambda_{l-1} / lambda_l and b_l -> b_l / lambda_l (lambda_0 = 1 for the analog input). Our IF layer
emits theta_l per spike (neurons.py), so in the threshold-balanced network the current into layer l is
W_l (lambda_{l-1} s_{l-1}) + b_l, and in the weight-normalised one it is that same current divided by lambda_l.
If the two networks have emitted the same spikes so far, the normalised membrane is therefore exactly the balanced
membrane divided by lambda_l (v0 included, since v0 is a fraction of the threshold), so one crosses 1 exactly when
the other crosses lambda_l, and subtracting 1 there is subtracting lambda_l here: by induction over time steps and
layers both emit the same spikes. The only difference is the read-out, the last (non-spiking) layer: here it
receives the spikes at the ANN's own scale, so the averaged outputs approximate the ANN's logits themselves
instead of a positive multiple of them, which leaves every prediction unchanged. (In floating point the two are
equal up to rounding.)

With constant (direct) input, an IF layer with threshold theta and reset by subtraction fires at the rate
clip(a / theta, 0, 1) in the limit of many steps, where a is the current it integrates; so the SNN approximates
the ANN whose ReLU outputs are clipped at lambda_l. MaxNorm clips nothing on the calibration images (the
maximum is exact); RobustNorm clips the top (100 - p) % of them, in exchange for a lower threshold, hence
higher rates and a shorter latency.
"""
from __future__ import annotations

import copy
import math
from typing import Iterable

import torch
from torch import nn

from ...conversion import MAX_POOLING, ConversionError, refuse_max_pooling
from ...neurons import IFNeuron, if_neurons
from ..cq.activation import ClampQuantize, GridQuantizer
from ..qcfs.activation import QCFS

OTHER_ACTIVATIONS = (QCFS, ClampQuantize, GridQuantizer, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU,
                     nn.CELU, nn.GELU, nn.SiLU, nn.Hardtanh, nn.Hardswish, nn.Sigmoid, nn.Tanh, nn.Softplus)
# Percentiles are taken of at most this many activation values per layer (64 MiB of float32): more and each
# calibration batch contributes a uniform random sample in proportion to its number of images (see below).
MAX_SAMPLES = 2 ** 24


def relu_layers(model: nn.Module) -> list[tuple[str, nn.ReLU]]:
    """(qualified name, module) of every ReLU module, in module registration order: the order of the scales."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, nn.ReLU)]


def validate(ann: nn.Module) -> None:
    """The ANN must consist of parts with a rate-coded IF equivalent: no max pooling, ReLU as the only activation."""
    for name, m in ann.named_modules():
        refuse_max_pooling(name, m, "build the model with average pooling (docs/methods/norm.md)")
        if isinstance(m, OTHER_ACTIVATIONS):
            raise ConversionError(f"module {name!r} is a {type(m).__name__}; MaxNorm and RobustNorm convert "
                                  "networks whose only activation is ReLU (training recipe 'relu')")
    if not relu_layers(ann):
        raise ConversionError("the model has no ReLU to convert")


def _percentile_rank(p: float, n: int) -> int:
    """Nearest-rank percentile: the k-th smallest of n values, k = ceil(p / 100 * n), 1 <= k <= n (p = 100 is the
    maximum). Rounded to 9 decimals first, so that e.g. p = 70, n = 10 gives k = 7, not 8."""
    return min(n, max(1, math.ceil(round(p * n / 100.0, 9))))


@torch.no_grad()
def activation_scales(ann: nn.Module, x_batches: torch.Tensor | Iterable[torch.Tensor], percentile: float | None,
                      *, batch_size: int = 256, max_samples: int = MAX_SAMPLES, seed: int = 0) -> list[float]:
    """Per ReLU layer (in `relu_layers` order): the maximum (percentile None: MaxNorm) or the p-th percentile
    (RobustNorm) of that layer's outputs over the calibration images, the ANN in eval mode, nothing clipped.

    x_batches: the network's input, one tensor [N, ...] (run in batches of `batch_size`) or an iterable of
    batches. Every output value counts, zeros included (one value per neuron and image).

    Percentile: nearest rank (`_percentile_rank`), via `kthvalue`, so the scale is one of the observed values.
    It is exact while a layer has at most `max_samples` values over all N images. Beyond that (large images or
    many calibration images), each batch of B images contributes round(max_samples * B / N) values drawn
    uniformly with replacement (a generator seeded with `seed`), so every image weighs the same and memory stays
    bounded; the percentile of that sample estimates the layer's. The maximum is always exact.
    """
    if percentile is not None and not 0 < percentile <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {percentile}")
    layers = relu_layers(ann)
    if not layers:
        raise ConversionError("the model has no ReLU layer to measure")
    batches = list(x_batches.split(batch_size)) if isinstance(x_batches, torch.Tensor) else list(x_batches)
    n_images = sum(int(b.shape[0]) for b in batches)
    if n_images == 0:
        raise ValueError("no calibration images")
    params = next(ann.parameters(), None)
    device = params.device if params is not None else batches[0].device
    gen = torch.Generator().manual_seed(seed)
    maxima: list[torch.Tensor | None] = [None] * len(layers)
    kept: list[list[torch.Tensor]] = [[] for _ in layers]
    calls = [0] * len(layers)

    def record(i: int):
        def hook(module, inputs, output):
            calls[i] += 1
            a = output.detach().float()
            if percentile is None:
                m = a.max()
                maxima[i] = m if maxima[i] is None else torch.maximum(maxima[i], m)
                return
            flat = a.reshape(-1)
            rows = a.shape[0]
            if flat.numel() // max(rows, 1) * n_images <= max_samples:
                kept[i].append(flat.clone())  # the ANN could still modify its activation in place
            else:
                k = max(1, round(max_samples * rows / n_images))
                idx = torch.randint(flat.numel(), (k,), generator=gen).to(flat.device)
                kept[i].append(flat[idx])
        return hook

    was_training = ann.training
    ann.eval()
    handles = [m.register_forward_hook(record(i)) for i, (_, m) in enumerate(layers)]
    try:
        for xb in batches:
            ann(xb.to(device))
            for i, (name, _) in enumerate(layers):
                if calls[i] != 1:
                    raise ConversionError(
                        f"ReLU module {name!r} ran {calls[i]} times in one forward pass; an IF layer holds "
                        "state, so every activation site needs its own module")
                calls[i] = 0
    finally:
        for h in handles:
            h.remove()
        ann.train(was_training)
    if percentile is None:
        return [float(m) for m in maxima]
    scales = []
    for values in kept:
        z = torch.cat(values)
        scales.append(float(z.kthvalue(_percentile_rank(percentile, z.numel())).values))
    return scales


def convert_relu(ann: nn.Module, scales: list[float] | None, v0_fraction: float = 0.0) -> nn.Module:
    """The IF SNN of a ReLU ANN (the ANN is left untouched): ReLU layer l (in `relu_layers` order) becomes an
    `IFNeuron` with theta = scales[l], reset by subtraction, v0 = v0_fraction * theta (module docstring on why the
    threshold replaces weight normalisation). scales None: thresholds 1, a skeleton to load a saved SNN into."""
    validate(ann)
    relus = relu_layers(ann)
    if scales is None:
        scales = [1.0] * len(relus)
    if len(scales) != len(relus):
        raise ConversionError(f"{len(scales)} scales for {len(relus)} ReLU layers")
    for (name, _), s in zip(relus, scales):
        if not (math.isfinite(s) and s > 0):
            raise ConversionError(
                f"ReLU layer {name!r} has scale {s}: it was (almost) never active on the calibration images, so "
                "it has no usable threshold; use more calibration images or a higher percentile")
    snn = copy.deepcopy(ann)
    for (name, _), s in zip(relus, scales):
        parent_name, _, child = name.rpartition(".")
        parent = snn.get_submodule(parent_name) if parent_name else snn
        setattr(parent, child, IFNeuron(float(s), v0_fraction))
    snn.eval()
    for p in snn.parameters():
        p.requires_grad_(False)
    return snn


def set_v0(snn: nn.Module, v0_fraction: float) -> None:
    """Every IF layer starts its next simulation at v0 = v0_fraction * theta (the state is cleared)."""
    for n in if_neurons(snn):
        n.v0_fraction = float(v0_fraction)
        n.reset_state()
