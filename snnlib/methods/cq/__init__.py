"""CQ (Yan, Zhou, Wong, AAAI 2021; docs/methods/cq.md): clamp-and-quantize training in three stages, an IF input
encoder, conversion to threshold-1 IF neurons with BN folded, and T-sweeps at reduced weight precision.
Registers the "cq" training recipe and the method "cq": one curve per weight precision."""
from __future__ import annotations

import torch

from ...conversion import ConversionError
from ..base import Method, Recipe, Variant, VariantRun, metering, register, register_recipe
from .activation import ClampQuantize, GridQuantizer, configure_cq, set_cq_stage
from .conversion import ann_levels, ann_view, convert_cq, spike_counts, spiking_layer_kinds, spiking_layer_names
from .encoding import SpikeEncoder
from .weight_quant import FLOAT_BITS, num_levels, quantize_weights


class CQRecipe(Recipe):
    name = "cq"
    levels_key = ("cq", "T")

    def check(self, exp):
        from ...config import ConfigError
        problems = []
        if exp["normalize"]:
            problems.append("normalize must be false: the spike encoder needs raw pixels in [0, 1]")
        if "epochs" in exp["train"]:
            problems.append("train.epochs is not used by cq: set the epochs of each stage in cq.stages")
        if problems:
            raise ConfigError("recipe cq: " + "; ".join(problems))

    def build(self, exp):
        from ...config import ConfigError
        from ...data import get_info
        from ...models import create_model
        self.check(exp)
        info, cq = get_info(exp["dataset"]), exp["cq"]
        grid = dict(T=cq["T"], rounding=cq["rounding"], guard=cq["grid_guard"], clip_grad=cq["ste_clip_grad"])
        model = create_model(exp["model"], num_classes=info.num_classes, in_channels=info.in_channels,
                             image_size=info.image_size, act=lambda: ClampQuantize(**grid))
        if not any(isinstance(m, GridQuantizer) and m.site == "input" for m in model.modules()):
            raise ConfigError(f"recipe cq needs a CQ network with quantizer sites; {exp['model']!r} has none. "
                              "Use one of the *_cq models, vgg_star or lenet_cq (snnlib/models/cq_nets.py)")
        return configure_cq(model, **grid, quantize_pool=cq["quantize_pool"], quantize_input=cq["quantize_input"])

    def train(self, ctx):
        from ...training import predict
        from .training import CQSchedule, train_cq
        cq = ctx.exp["cq"]
        schedule = CQSchedule(epochs=cq["stages"], lr=cq["lr"], optimizer=cq["optimizer"], lr_decay=cq["lr_decay"],
                              weight_decay=cq["weight_decay"], batch_size=ctx.exp["train"]["batch_size"],
                              input_noise=cq["input_noise"],
                              checkpoint_every_s=ctx.exp["train"].get("checkpoint_every_s"))

        def stage_accuracy(m):
            pred = predict(m, ctx.test, ctx.to_input, ctx.ann_batch).cpu()
            return {"test_acc_full": float((pred == ctx.test.labels.cpu()).float().mean())}

        hist = train_cq(ctx.model, ctx.data.to(ctx.device), None, ctx.to_input, schedule, ctx.seed, ctx.ckpt_dir,
                        ctx.augment, ctx.log, fingerprint=ctx.fingerprint, evaluate=stage_accuracy)
        stage_end = {r["stage"]: r.get("test_acc_full") for r in hist["history"] if r.get("stage_end")}
        return {"history": hist["history"], "stage_test_accuracy": stage_end}

    def views(self):
        # clamp only is the SNN's T -> inf limit; the quantize stage is the network as trained
        return {"ann_clip": lambda m: set_cq_stage(m, "clamp"), "ann_quantized": lambda m: set_cq_stage(m, "quantize")}

    def final_view(self, model):
        return set_cq_stage(model, "quantize")


class _InputTotals:
    """Sum of the input current of every IF layer over the steps run while attached (float64)."""

    def __init__(self, snn: torch.nn.Module):
        from ...neurons import IFNeuron
        self.totals: dict[str, torch.Tensor] = {}
        self.handles = [m.register_forward_pre_hook(self._hook(name)) for name, m in snn.named_modules()
                        if isinstance(m, IFNeuron)]

    def _hook(self, name):
        def add(module, inputs):
            x = inputs[0].to(torch.float64)
            x = x.reshape(module.steps, x.shape[0] // module.steps, *x.shape[1:]).sum(0)
            self.totals[name] = self.totals[name] + x if name in self.totals else x
        return add

    def detach(self) -> dict[str, torch.Tensor]:
        for h in self.handles:
            h.remove()
        return self.totals


class _LayerAgreement:
    """Running per-layer comparison of SNN spike counts at T (docs/methods/cq.md) with
    global: T x the quantized CNN's activation (errors of earlier layers included), and
    local:  the level of the layer's own total input, clamp(floor(P_T + v0), 0, T) (this layer's error only)."""

    def __init__(self):
        self.stats: dict[str, dict] = {}

    def add(self, counts: dict[str, torch.Tensor], references: dict[str, dict[str, torch.Tensor]]) -> None:
        for kind, levels in references.items():
            for name, c in counts.items():
                diff = (c.double() - levels[name].double()).abs()
                s = self.stats.setdefault(name, {}).setdefault(
                    kind, {"neurons": 0, "exact": 0, "abs_diff_sum": 0.0, "max_abs_diff": 0.0})
                s["neurons"] += diff.numel()
                s["exact"] += int((diff == 0).sum())
                s["abs_diff_sum"] += float(diff.sum())
                s["max_abs_diff"] = max(s["max_abs_diff"], float(diff.max()) if diff.numel() else 0.0)

    def report(self, kinds: dict[str, str]) -> list[dict]:
        rows = []
        for name, by_kind in self.stats.items():
            row = {"layer": name, "kind": kinds.get(name), "neurons": by_kind["global"]["neurons"]}
            for kind, s in by_kind.items():
                prefix = "" if kind == "global" else f"{kind}_"
                n = max(s["neurons"], 1)
                row.update({f"{prefix}exact_fraction": s["exact"] / n,
                            f"{prefix}mean_abs_diff_spikes": s["abs_diff_sum"] / n,
                            f"{prefix}max_abs_diff_spikes": s["max_abs_diff"]})
            rows.append(row)
        return rows


class CQMethod(Method):
    name = conversion = "cq"
    recipe = "cq"
    doc = "docs/methods/cq.md"
    summary = "SNN, CQ"
    settings_schema = {
        "type": "object", "additionalProperties": False,
        "properties": {
            "weight_bits": {
                "description": "synaptic weight precisions evaluated without retraining (32 = float32; n: "
                               "symmetric n-bit codes, one scale per layer, 2^n - 1 levels, readout layer kept in "
                               "float; snnlib/methods/cq/weight_quant.py)",
                "type": "array", "items": {"type": "integer", "minimum": 2, "maximum": 32}, "uniqueItems": True,
                "minItems": 1, "default": [32, 9, 8]},
        },
    }

    def bits(self, settings) -> list[int]:
        return [FLOAT_BITS] + [b for b in settings["weight_bits"] if b != FLOAT_BITS]

    def variants(self, exp, settings):
        T = exp["cq"]["T"]
        return [Variant("" if b == FLOAT_BITS else f"w{b}",
                        f"SNN, CQ (T={T})" + ("" if b == FLOAT_BITS else f", {b}-bit weights"),
                        params={"weight_bits": b}) for b in self.bits(settings)]

    def convert(self, ann, exp, settings, calibration=None):
        """Fold BN, swap every CQ site for an IF neuron (threshold 1, v0 = offset + guard), the input for an
        encoder."""
        return convert_cq(set_cq_stage(ann, "quantize").eval())

    def convert_report(self, snn):
        from ...neurons import if_neurons
        neurons = [n for n in if_neurons(snn) if not isinstance(n, SpikeEncoder)]
        return {"spiking_layers": len(neurons), "thresholds": [float(n.theta) for n in neurons],
                "v0_fraction": neurons[0].v0_fraction, "encoder": "IF, threshold 1 (docs/methods/cq.md)"}

    def evaluator(self, snn, exp, settings):
        return _CQEvaluation(self, snn, exp, settings)


class _CQEvaluation:
    """One simulation to T_max per weight precision and batch, cumulative read-out. The float32 run also records,
    at T = cq.T, how many neurons of every layer fire exactly T x the quantized CNN's activation (the near-lossless
    claim), and how often the SNN's prediction equals the CNN's."""

    def __init__(self, method: CQMethod, snn, exp, settings):
        from ...neurons import IFNeuron
        self.method, self.snn, self.exp, self.settings = method, snn, exp, settings
        self.T_grid, self.T_max = exp["cq"]["T"], exp["eval"]["T_max"]
        self.t_first = min(self.T_grid, self.T_max)
        self.view = ann_view(snn, self.T_grid)
        self.names = spiking_layer_names(snn)
        self.agreement, self.same_prediction, self.n = _LayerAgreement(), 0, 0
        self.nets = {v.key: quantize_weights(snn, v.params["weight_bits"]) for v in method.variants(exp, settings)}
        self.v0 = {name: m.v0_fraction for name, m in snn.named_modules() if isinstance(m, IFNeuron)}

    def run(self, x, T_max, meter):
        from ...engine import reset, run_steps
        chunk = self.exp["eval"]["chunk"]
        out_all = {}
        for key, net in self.nets.items():  # float32 first: the only precision whose operations are counted
            metered = meter if key == "" else None
            reset(net)
            record = key == "" and self.t_first == self.T_grid
            totals = _InputTotals(net) if record else None
            with metering(metered):  # only around the SNN's own steps: the CNN view below shares its layers
                out = run_steps(net, x, self.t_first, chunk)
            if record:
                local = {name: torch.floor(p + self.v0[name]).clamp(0, self.T_grid)
                         for name, p in totals.detach().items()}
                self.agreement.add(spike_counts(net), {"global": ann_levels(self.view, x, self.T_grid, self.names),
                                                       "local": local})
                self.same_prediction += int((out.sum(0).argmax(-1) == self.view(x).argmax(-1)).sum())
            if T_max > self.t_first:
                with metering(metered):
                    out = torch.cat([out, run_steps(net, x, T_max - self.t_first, chunk)])
            reset(net)
            out_all[key] = VariantRun(out, list(range(T_max)) if metered is not None else None)
        self.n += x.shape[0]
        return out_all

    def report(self) -> dict:
        layers = self.agreement.report(spiking_layer_kinds(self.snn))
        return {"cq_T": self.T_grid,
                "weight_levels": {str(v.params["weight_bits"]): None if v.params["weight_bits"] == FLOAT_BITS
                                  else num_levels(v.params["weight_bits"])
                                  for v in self.method.variants(self.exp, self.settings)},
                "layer_agreement_at_T": self.T_grid if layers else None, "layer_agreement": layers,
                "snn_equals_ann_prediction_at_T": self.same_prediction / self.n if layers and self.n else None}


register_recipe(CQRecipe())
register(CQMethod())
