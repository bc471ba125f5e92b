"""COS (Hao et al., ICLR 2023; docs/methods/cos.md): on the QCFS-converted SNN, each IF neuron of each input sample
calibrates its initial membrane potential from a pre-run of rho steps, layer by layer, then reruns the same inputs
from the shifted potential. The algorithm is algorithm.py; this registers the method "cos": one curve per rho,
latency rho + T."""
from __future__ import annotations

import contextlib

from ..base import Method, Variant, VariantRun, register
from .algorithm import (LOWER_TARGET, NONE_SENTINEL, RAISE_TARGET, calibrating, cos_simulate, desired_count,
                        initial_potential, phase_a)

__all__ = ["COSMethod", "LOWER_TARGET", "NONE_SENTINEL", "RAISE_TARGET", "calibrating", "cos_simulate",
           "desired_count", "initial_potential", "metered_steps", "phase_a"]


def metered_steps(rho: int, T_max: int, offset: int = 0) -> list[int]:
    """The recorded steps a COS read-out depends on, as an operation meter sees one COS run of max(T_max, rho)
    steps starting at `offset`: the rho calibration steps, then the T_max counted steps. Both start at the run's
    first step because phase B replays phase A's inputs; so the first t_pre + T entries (t_pre = rho) count the
    synaptic operations of an implementation that delivers the calibration inputs twice (docs/methods/cos.md,
    "Operations and energy")."""
    return [offset + t for t in range(rho)] + [offset + t for t in range(T_max)]


class COSMethod(Method):
    name = "cos"
    recipe = "qcfs"
    conversion = "qcfs"   # the plain QCFS SNN: COS changes how it is run (per-neuron initial potentials), not weights
    doc = "docs/methods/cos.md"
    summary = "SNN, COS"
    settings_schema = {
        "type": "object", "additionalProperties": False,
        "properties": {
            "rho": {"description": "calibration lengths rho (pre-run steps per layer before the counted run; "
                                   "latency rho + T); one curve each",
                    "type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 1,
                    "uniqueItems": True, "default": [4]},
        },
    }

    def variants(self, exp, settings):
        return [Variant(f"rho{rho}", f"SNN, COS rho={rho}", t_pre=rho, params={"rho": rho})
                for rho in sorted(settings["rho"])]

    def run(self, snn, x, T_max, exp, settings, metered):
        """One layer-major simulation of max(T_max, rho) steps per rho. `metered`: True when the caller has an
        operation meter attached, or the meter itself (anything with `attached()`), which is then attached here."""
        meter = metered if hasattr(metered, "attached") else None
        runs, offset = {}, 0
        with meter.attached() if meter is not None else contextlib.nullcontext():
            for v in self.variants(exp, settings):
                rho = v.params["rho"]
                outputs = cos_simulate(snn, x, T_max, rho)
                steps = metered_steps(rho, T_max, offset) if metered else None
                offset += max(T_max, rho)
                runs[v.key] = VariantRun(outputs, steps)
        return runs


register(COSMethod())
