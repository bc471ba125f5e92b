"""The methods "maxnorm" and "robustnorm": one conversion each (conversion.py), evaluated with two initial
membrane potentials.

v0 changes the SNN, but only through each IF layer's `v0_fraction`, not through the thresholds. So `convert`
measures the thresholds once and `run` evaluates every requested v0 on the same SNN, one simulation after another
(the neurons reset in between, so each starts from its own v0):

  key       label                          v0
  v0_0      SNN, MaxNorm (v0=0)            0           the papers' setting
  v0_half   SNN, MaxNorm (v0=theta/2)      theta / 2   rounds instead of floors the rate (Bu et al.'s half-threshold
                                                       initialisation applied to these baselines)

Neither has a pre-run: t_pre = 0, latency = T.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ...neurons import if_neurons
from ..base import metering, Method, Variant, VariantRun
from .conversion import activation_scales, convert_relu, set_v0

V0_KEYS = {0.0: "v0_0", 0.5: "v0_half"}
V0_TEXT = {0.0: "0", 0.5: "theta/2"}
DEFAULT_V0 = [0, 0.5]
DEFAULT_CALIBRATION_IMAGES = 512
DEFAULT_PERCENTILE = 99.9


def _schema(robust: bool) -> dict:
    props: dict = {
        "v0": {"description": "initial membrane potentials to evaluate, as fractions of the threshold; one curve "
                              "each", "type": "array", "items": {"enum": [0, 0.5]}, "minItems": 1,
               "uniqueItems": True, "default": list(DEFAULT_V0)},
        "calibration_images": {"description": "training images (without augmentation) the scales are measured on",
                               "type": "integer", "minimum": 1, "default": DEFAULT_CALIBRATION_IMAGES},
    }
    if robust:
        props["percentile"] = {"description": "each layer's threshold is this percentile of its ReLU outputs",
                               "type": "number", "exclusiveMinimum": 0, "maximum": 100,
                               "default": DEFAULT_PERCENTILE}
    return {"type": "object", "additionalProperties": False, "properties": props}


class NormMethod(Method):
    recipe = "relu"
    doc = "docs/methods/norm.md"

    def __init__(self, name: str, display: str, summary: str, robust: bool):
        self.name = self.conversion = name
        self.display, self.summary, self.robust = display, summary, robust
        self.settings_schema = _schema(robust)

    def percentile(self, settings: dict) -> float | None:
        return float(settings.get("percentile", DEFAULT_PERCENTILE)) if self.robust else None

    def variants(self, exp: dict, settings: dict) -> list[Variant]:
        out = []
        for v0 in settings.get("v0", DEFAULT_V0):
            v0 = float(v0)
            if v0 not in V0_KEYS:
                raise ValueError(f"{self.name}: v0 must be 0 or 0.5 (fractions of the threshold), got {v0}")
            out.append(Variant(V0_KEYS[v0], f"SNN, {self.display} (v0={V0_TEXT[v0]})", 0, {"v0": v0}))
        return out

    def convert(self, ann: nn.Module, exp: dict, settings: dict, calibration: Callable | None = None) -> nn.Module:
        """calibration(n) -> n normalised training images (one tensor, or an iterable of batches) on which each
        ReLU layer's scale is measured; n = settings["calibration_images"]. Without calibration: the skeleton
        (thresholds 1) that a saved SNN is loaded into."""
        if calibration is None:  # the structure only, for a saved SNN's thresholds to be loaded into
            return convert_relu(ann, None, self.variants(exp, settings)[0].params["v0"])
        images = calibration(int(settings.get("calibration_images", DEFAULT_CALIBRATION_IMAGES)))
        scales = activation_scales(ann, images, self.percentile(settings))
        return convert_relu(ann, scales, self.variants(exp, settings)[0].params["v0"])

    def run(self, snn: nn.Module, x: torch.Tensor, T_max: int, exp: dict, settings: dict,
            meter) -> dict[str, VariantRun]:
        """Each variant simulated alone for T_max steps, in `variants` order: with a meter attached, variant i's
        steps are i * T_max ... (i + 1) * T_max - 1 of what it recorded."""
        from ...engine import reset, run_steps
        chunk = (exp.get("eval") or {}).get("chunk", 1)
        neurons = if_neurons(snn)
        saved = [n.v0_fraction for n in neurons]
        results, offset = {}, 0
        try:
            for variant in self.variants(exp, settings):
                set_v0(snn, variant.params["v0"])
                reset(snn)
                with metering(meter):
                    out = run_steps(snn, x, T_max, chunk)
                results[variant.key] = VariantRun(out, list(range(offset, offset + T_max)) if meter else None)
                offset += T_max
        finally:
            reset(snn)
            for n, v0 in zip(neurons, saved):
                n.v0_fraction = v0
        return results

    def convert_report(self, snn: nn.Module) -> dict:
        neurons = if_neurons(snn)
        return {"spiking_layers": len(neurons), "thresholds": [float(n.theta) for n in neurons],
                "threshold_rule": "a percentile (settings.percentile) of each ReLU layer's outputs" if self.robust
                else "maximum of each ReLU layer's outputs",
                "v0_fraction": "per variant (v0_0: 0, v0_half: 0.5)"}


MAXNORM = NormMethod("maxnorm", "MaxNorm",
                     "MaxNorm: each IF threshold = its ReLU layer's maximum activation (Diehl et al. 2015)",
                     robust=False)
ROBUSTNORM = NormMethod("robustnorm", "RobustNorm",
                        "RobustNorm: each IF threshold = the 99.9th percentile of its ReLU layer's activations "
                        "(Rueckauer et al. 2017)", robust=True)
