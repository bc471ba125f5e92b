"""SRP (Hao et al., AAAI 2023; docs/methods/srp.md): on the QCFS-converted SNN, a pre-run of tau steps whose
residual membrane potential decides which neurons are silenced for the counted run. The algorithm itself is
algorithm.py; this registers the method "srp": one curve per tau, latency tau + T."""
from __future__ import annotations

from ..base import Method, Variant, VariantRun, metering, register
from .algorithm import SRP_RULES, srp_branches


class SRPMethod(Method):
    name = "srp"
    recipe = "qcfs"
    conversion = "qcfs"   # the plain QCFS SNN: SRP changes how it is run, not its weights
    doc = "docs/methods/srp.md"
    summary = "SNN, SRP"
    analyses = ("unevenness",)   # the SRP paper's subject: unevenness errors before and after the pre-run
    settings_schema = {
        "type": "object", "additionalProperties": False,
        "properties": {
            "taus": {"description": "pre-run lengths tau (steps before the counted run; latency tau + T)",
                     "type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 1,
                     "uniqueItems": True, "default": [4]},
            "T_max": {"description": "read-out steps simulated after each pre-run; null = eval.T_max. Each tau costs "
                                     "T_max steps, so a sweep of four taus costs about 4x the plain run",
                      "type": "integer", "minimum": 1},  # no default: absent leaves older configs' hashes alone
            "rule": {"description": "reference: the authors' rule (keep iff v > 1e-3 theta); exact: the derived "
                                    "condition (docs/methods/srp.md)",
                     "enum": list(SRP_RULES), "default": "reference"},
        },
    }

    def variants(self, exp, settings):
        return [Variant(f"tau{t}", f"SNN, SRP tau={t} ({settings['rule']} rule)", t_pre=t, params={"tau": t})
                for t in sorted(settings["taus"])]

    def run(self, snn, x, T_max, exp, settings, meter):
        from ...engine import simulate
        with metering(meter):
            # one simulation: the plain prefix is shared by every tau, each masked run forks off it
            sim = simulate(snn, x, T_max, branches=srp_branches(settings["taus"], settings["rule"]), plain=False,
                           chunk=exp["eval"]["chunk"])
        return {key: VariantRun(sim[key], sim.steps[key] if meter is not None else None)
                for key in (v.key for v in self.variants(exp, settings))}


register(SRPMethod())
